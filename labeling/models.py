"""Campaigns ask one question about many pictures; items collect votes until the crowd agrees.

Invariants live here as database constraints: one picture once per campaign, one live vote per
(item, user), one client UUID per vote, one lease per (item, user).
"""

from django.conf import settings
from django.contrib.auth.models import User
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from classification.models import Image
from classification.vocabulary import VALUES, Attribute, choices_for

# The answer a labeler gives when the picture does not let them decide. It counts toward max_votes only.
CANT_TELL = "cant_tell"
CANT_TELL_LABEL = "Can't tell"


class Campaign(models.Model):
    """One question (an attribute from classification's vocabulary) asked about a set of pictures."""

    name = models.CharField(max_length=120, unique=True)
    attribute = models.CharField(max_length=20, choices=Attribute.choices)
    guidelines = models.TextField(
        blank=True, help_text="Markdown shown one tap away from the labeling screen (raw HTML is escaped)."
    )
    votes_required = models.PositiveSmallIntegerField(default=5, help_text="Votes one label needs to be decided.")
    max_votes = models.PositiveSmallIntegerField(
        default=9, help_text="An item is a conflict when no label can reach votes_required within this many votes."
    )
    gold_rate = models.FloatField(default=0.1, help_text="Share of served items that are gold (0–1).")

    class Rule(models.TextChoices):
        COUNT = "count", "Count: votes_required agree, within max_votes"
        WEIGHTED = "weighted", "Quality-weighted: posterior of the leading answer reaches the threshold"

    rule = models.CharField(
        max_length=10,
        choices=Rule.choices,
        default=Rule.COUNT,
        help_text="When an item is decided. Weighted: uses each voter's gold accuracy, min_votes to max_votes.",
    )
    min_votes = models.PositiveSmallIntegerField(default=2, help_text="Weighted rule: fewest votes that may decide.")
    threshold = models.FloatField(
        default=0.99, help_text="Weighted rule: the leading answer's posterior probability that decides (0.5–1)."
    )
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-active", "-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(votes_required__gte=1), name="campaign_votes_required_positive"),
            models.CheckConstraint(
                condition=Q(max_votes__gte=F("votes_required")), name="campaign_max_votes_gte_required"
            ),
            models.CheckConstraint(condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=1), name="campaign_gold_rate_0_1"),
            models.CheckConstraint(condition=Q(attribute__in=list(VALUES)), name="campaign_attribute_known"),
            models.CheckConstraint(condition=Q(rule__in=["count", "weighted"]), name="campaign_rule_known"),
            models.CheckConstraint(
                condition=Q(rule="count") | (Q(min_votes__gte=1) & Q(max_votes__gte=F("min_votes"))),
                name="campaign_min_votes_1_to_max",
            ),
            models.CheckConstraint(
                condition=Q(threshold__gte=0.5) & Q(threshold__lt=1), name="campaign_threshold_half_to_1"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def choices(self) -> list[str]:
        """The labels a voter may give, in display order (can't tell is always allowed besides)."""
        return choices_for(self.attribute)

    def choice_labels(self) -> list[tuple[str, str]]:
        names = dict(VALUES[self.attribute].choices)
        return [(value, str(names[value])) for value in self.choices]


class Item(models.Model):
    """One picture in one campaign, with the running tally of its votes."""

    class Status(models.TextChoices):
        OPEN = "open"
        DECIDED = "decided"
        CONFLICT = "conflict"
        ADJUDICATED = "adjudicated"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="items")
    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN)
    label = models.CharField(max_length=40, blank=True)
    # label → live votes for it (can't tell is kept apart); the tally is written under the item's row lock.
    counts = models.JSONField(default=dict, blank=True)
    cant_tell = models.PositiveSmallIntegerField(default=0)
    vote_count = models.PositiveSmallIntegerField(default=0, help_text="Live votes, can't tell included.")
    # The highest per-label count: "closest to a decision" ordering without reading the JSON.
    top_count = models.PositiveSmallIntegerField(default=0)
    decided_at = models.DateTimeField(null=True, blank=True)
    is_gold = models.BooleanField(default=False)
    gold_label = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "image"], name="item_picture_once_per_campaign"),
            models.CheckConstraint(
                condition=(Q(is_gold=True) & ~Q(gold_label="")) | (Q(is_gold=False) & Q(gold_label="")),
                name="item_gold_has_answer",
            ),
            # Gold items measure people; they are never decided and never become ground truth.
            models.CheckConstraint(condition=Q(is_gold=False) | Q(status="open"), name="item_gold_stays_open"),
            models.CheckConstraint(condition=Q(top_count__lte=F("vote_count")), name="item_top_within_votes"),
        ]
        indexes = [
            # In the exact order assignment reads, so PostgreSQL stops after a handful of rows.
            models.Index(
                fields=["campaign", "is_gold", "status", "-top_count", "-vote_count", "id"], name="item_next_lookup"
            ),
            models.Index(fields=["status", "decided_at"], name="item_status_decided"),
        ]

    def __str__(self) -> str:
        return f"item {self.pk} ({self.status})"


class VoteQuerySet(models.QuerySet):
    def live(self):
        """Votes that count: not undone."""
        return self.filter(undone_at__isnull=True)


class Vote(models.Model):
    """One answer by one person. Undoing keeps the row (undone_at) so a late replay is not counted again."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="votes")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="labeling_votes")
    label = models.CharField(max_length=40)
    client_uuid = models.UUIDField(unique=True)
    ms_to_answer = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    undone_at = models.DateTimeField(null=True, blank=True)

    objects = VoteQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["item", "user"], condition=Q(undone_at__isnull=True), name="vote_once_per_item_and_user"
            ),
        ]
        indexes = [
            models.Index(fields=["user", "created_at"], name="vote_user_time"),
        ]

    def __str__(self) -> str:
        return f"vote {self.pk}: item {self.item_id} = {self.label}"


class Lease(models.Model):
    """An item reserved for one labeler until it expires, so the crowd does not over-serve an item."""

    # No index of their own: (item, user), (item, expires_at) and (user, expires_at) below lead with them, and
    # every lease is written and deleted once per answer, each index costing its update.
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="leases", db_index=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="labeling_leases", db_index=False
    )
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "user"], name="lease_once_per_item_and_user")]
        indexes = [
            models.Index(fields=["item", "expires_at"], name="lease_item_expiry"),
            models.Index(fields=["expires_at"], name="lease_expiry"),
            models.Index(fields=["user", "expires_at"], name="lease_user_expiry"),
        ]

    def __str__(self) -> str:
        return f"lease item {self.item_id} → user {self.user_id} until {self.expires_at:%H:%M:%S}"


class LabelerQuality(User):
    """Labelers as the admin sees them: gold accuracy and agreement, flagged when below the threshold."""

    class Meta:
        proxy = True
        verbose_name = "labeler quality"
        verbose_name_plural = "labeler quality"


class LabelerStanding(models.Model):
    """One labeler's gold record (refreshed by the quality sweep) and flag. While flagged, their votes are
    kept but count for nothing: no tally, no decision, no max_votes budget."""

    class Source(models.TextChoices):
        GOLD = "gold", "Gold accuracy"
        ADMIN = "admin", "An admin"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE, related_name="labeling_standing"
    )
    gold_answered = models.PositiveIntegerField(default=0)
    gold_correct = models.PositiveIntegerField(default=0)
    flagged_at = models.DateTimeField(null=True, blank=True)
    flag_source = models.CharField(max_length=10, choices=Source.choices, blank=True)
    flag_reason = models.CharField(max_length=300, blank=True)
    # Gold answers counted when an admin last unflagged: gold flags them again only on newer evidence.
    cleared_gold = models.PositiveIntegerField(default=0)
    refreshed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(gold_correct__lte=F("gold_answered")), name="standing_correct_le_answered"
            )
        ]

    def __str__(self) -> str:
        return f"standing of user {self.user_id}{' (flagged)' if self.flagged_at else ''}"


class FlagEvent(models.Model):
    """A flag or unflag, who or what did it, and what it changed: the items reopened, decided or closed."""

    class Action(models.TextChoices):
        FLAG = "flag"
        UNFLAG = "unflag"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="labeling_flag_events")
    action = models.CharField(max_length=10, choices=Action.choices)
    source = models.CharField(max_length=10, choices=LabelerStanding.Source.choices)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.CharField(max_length=300, blank=True)
    at = models.DateTimeField(default=timezone.now)
    votes = models.PositiveIntegerField(default=0, help_text="The labeler's live votes on real items at the time.")
    # [{"item": id, "campaign": id, "from": "decided Dealer", "to": "open"}, ...] for items whose state changed.
    changes = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["user", "at"], name="flag_event_user_time")]

    def __str__(self) -> str:
        return f"{self.action} user {self.user_id} at {self.at:%Y-%m-%d %H:%M}"
