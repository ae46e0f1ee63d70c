"""Advertisers, their scrapes, vehicles and vehicle pictures, and the append-only history of manual fixes."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from classification.vocabulary import Attribute, Color


class Advertiser(models.Model):
    """A dealer whose inventory is scraped; its users see and fix only its own sitemap."""

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="advertisers")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Scrape(models.Model):
    """One inventory received (or a relaunch of classification) and the progress of classifying it."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    class Kind(models.TextChoices):
        INVENTORY = "inventory", "Inventory received"
        RELAUNCH = "relaunch", "Classification relaunched"

    advertiser = models.ForeignKey(Advertiser, on_delete=models.CASCADE, related_name="scrapes")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.INVENTORY)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    vehicles = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    from_cache = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    # Pictures the classifier gave no useful image type ({Placeholder, none}); counted when the run ends.
    ml_failures = models.PositiveIntegerField(default=0)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    # Last time a chunk counted pictures (or the run was dispatched), or later: when a chunk waiting to retry
    # will try again. The sweep resumes runs silent for too long after it.
    progressed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["advertiser", "-created_at"])]
        constraints = [
            models.CheckConstraint(condition=Q(done__lte=models.F("total")), name="scrape_done_within_total"),
            models.CheckConstraint(condition=Q(failed__lte=models.F("total")), name="scrape_failed_within_total"),
        ]

    def __str__(self) -> str:
        return f"scrape {self.pk} of {self.advertiser_id} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)

    @property
    def percent(self) -> int:
        return 100 if not self.total else round(100 * (self.done + self.failed) / self.total)


class Vehicle(models.Model):
    """A vehicle of an advertiser's inventory; a vehicle missing from a scrape becomes inactive, never deleted."""

    advertiser = models.ForeignKey(Advertiser, on_delete=models.CASCADE, related_name="vehicles")
    external_id = models.CharField(max_length=100)
    title = models.CharField(max_length=300, blank=True)
    # The colour the scrape gave, if any: then the classifier's colour is not applied (seed 002).
    color = models.CharField(max_length=20, choices=Color.choices, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["advertiser", "external_id"], name="vehicle_external_id_per_advertiser")
        ]
        indexes = [models.Index(fields=["advertiser", "active", "external_id"])]

    def __str__(self) -> str:
        return f"{self.external_id} {self.title}".strip()


class VehicleImage(models.Model):
    """The picture at one position of a vehicle's gallery: its URL and, once classified, the picture."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DONE = "done"
        FAILED = "failed"

    vehicle = models.ForeignKey(Vehicle, on_delete=models.CASCADE, related_name="images")
    position = models.PositiveSmallIntegerField()
    url = models.TextField()
    image = models.ForeignKey(
        "classification.Image", null=True, blank=True, on_delete=models.SET_NULL, related_name="vehicle_images"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    error = models.CharField(max_length=40, blank=True, help_text="Why the picture could not be downloaded")
    # Positions beyond the latest scrape's gallery are kept (their fixes reference them) but hidden.
    active = models.BooleanField(default=True)
    # The scrape (or relaunch) that last queued this row; chunks only count rows still pending under it.
    scrape = models.ForeignKey(Scrape, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Set when the URL changed: once classified, a fix of a near-duplicate picture is carried over.
    url_changed = models.BooleanField(default=False)

    class Meta:
        ordering = ["vehicle_id", "position"]
        constraints = [models.UniqueConstraint(fields=["vehicle", "position"], name="one_image_per_position")]
        indexes = [models.Index(fields=["scrape", "status"])]

    def __str__(self) -> str:
        return f"{self.vehicle_id}#{self.position} {self.url}"


class AppendOnlyError(Exception):
    """History rows are never changed or deleted."""


class ManualFixQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("manual fixes are append-only: they cannot be updated")

    def delete(self):
        raise AppendOnlyError("manual fixes are append-only: they cannot be deleted")

    # bulk_update goes through update(); refuse it explicitly for a clear message.
    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyError("manual fixes are append-only: they cannot be updated")


class ManualFix(models.Model):
    """One change of one attribute of one picture in a sitemap: what, old → new, who, when. Append-only.

    A picture never downloaded has no Image yet: its fix is keyed by the URL (``image`` and ``ground_truth``
    empty, ``url_hash`` set) and, once the picture is downloaded, recorded again on it (``carried_from``).
    """

    class Scope(models.TextChoices):
        STAFF = "staff", "Everywhere (staff fix)"
        ADVERTISER = "advertiser", "This advertiser only"

    vehicle_image = models.ForeignKey(VehicleImage, on_delete=models.PROTECT, related_name="fixes")
    image = models.ForeignKey("classification.Image", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    advertiser = models.ForeignKey(Advertiser, on_delete=models.PROTECT, related_name="fixes")
    attribute = models.CharField(max_length=20, choices=Attribute.choices)
    old_value = models.CharField(max_length=40, blank=True)
    new_value = models.CharField(max_length=40)
    scope = models.CharField(max_length=20, choices=Scope.choices)
    # None only for a fix carried over automatically (then carried_from names the original).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="manual_fixes"
    )
    url = models.TextField(blank=True, help_text="The URL the picture had when it was fixed")
    # SHA-256 of ``url`` for a fix keyed by URL (picture not downloaded yet); blank otherwise.
    url_hash = models.CharField(max_length=64, blank=True)
    ground_truth = models.ForeignKey(
        "classification.GroundTruth", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    carried_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="carried_to")
    created_at = models.DateTimeField(default=timezone.now)

    objects = ManualFixQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["advertiser", "-created_at"]),
            models.Index(fields=["image", "attribute"]),
            models.Index(fields=["url_hash"], condition=Q(image__isnull=True), name="manual_fix_by_url"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False) | Q(carried_from__isnull=False), name="manual_fix_has_author"
            ),
            models.CheckConstraint(condition=~Q(new_value=""), name="manual_fix_has_value"),
            models.CheckConstraint(
                condition=Q(image__isnull=True, ground_truth__isnull=True, url_hash__gt="")
                | Q(image__isnull=False, ground_truth__isnull=False),
                name="manual_fix_keyed_by_picture_or_url",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.attribute}: {self.old_value or '∅'} → {self.new_value}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("manual fixes are append-only: they cannot be updated")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("manual fixes are append-only: they cannot be deleted")


class FixOutbox(models.Model):
    """A fix still to be pushed to the classification cache; written in the fix's transaction."""

    manual_fix = models.OneToOneField(ManualFix, on_delete=models.PROTECT, related_name="outbox")
    # None for a fix keyed by URL (no picture yet): the push goes to the URL's cache entry.
    ground_truth_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=200, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["created_at"], condition=Q(delivered_at__isnull=True), name="outbox_undelivered")
        ]

    def __str__(self) -> str:
        return f"outbox {self.pk} ({'delivered' if self.delivered_at else 'pending'})"
