"""API token authentication that remembers who a token is for AUTH_CACHE_SECONDS (default 30 s).

Looking the token and its user up on every request was the largest single cost of a labeling request. A
deleted token, a deactivated or deleted user, or a changed role takes effect within AUTH_CACHE_SECONDS in
every server process, and at once in the process that saved the change (signals in core.signals drop the
entries). AUTH_CACHE_SECONDS=0 looks everything up on every request.
"""

import copy

from django.conf import settings
from rest_framework.authentication import TokenAuthentication

from core.memo import Memo
from core.roles import user_roles

# token key -> (user, token); each request gets its own copy of the user, so nothing one request sets on
# it is seen by another.
tokens = Memo(seconds=lambda: settings.AUTH_CACHE_SECONDS)


class CachedTokenAuthentication(TokenAuthentication):
    """DRF's token authentication (``Authorization: Token <key>``), remembered per process."""

    def authenticate_credentials(self, key):
        known = tokens.get(key)
        if known is None:
            user, token = super().authenticate_credentials(key)  # raises for unknown keys and inactive users
            user_roles(user)  # fills the role memory too, so the permission check costs nothing
            known = (user, token)
            tokens.set(key, known)
        user, token = known
        return copy.copy(user), token
