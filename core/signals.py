"""Forget remembered tokens and roles as soon as this process saves a change to them (core.authentication)."""

from django.contrib.auth.models import Group, User
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver
from rest_framework.authtoken.models import Token

from core import roles
from core.authentication import tokens


def _forget_user(user_id) -> None:
    roles.remembered.discard(user_id)
    tokens.discard_where(lambda known: known[0].pk == user_id)


@receiver([post_save, post_delete], sender=User)
def user_changed(sender, instance, **kwargs) -> None:
    _forget_user(instance.pk)


@receiver([post_save, post_delete], sender=Token)
def token_changed(sender, instance, **kwargs) -> None:
    tokens.discard(instance.key)


@receiver([post_save, post_delete], sender=Group)
def group_changed(sender, instance, **kwargs) -> None:
    roles.remembered.clear()
    tokens.clear()


@receiver(m2m_changed, sender=User.groups.through)
def memberships_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    if not action.startswith("post_"):
        return
    if isinstance(instance, User):
        _forget_user(instance.pk)
    else:  # group.user_set.add(...), or a clear() of a group: pk_set may be None
        for user_id in pk_set or ():
            _forget_user(user_id)
        if pk_set is None:
            roles.remembered.clear()
            tokens.clear()
