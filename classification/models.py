"""Pictures, the URLs they were seen at, what the classifier said about them, and ground truth."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from classification.vocabulary import Attribute


class Backend(models.TextChoices):
    BUILTIN = "builtin", "Builtin (histograms, no service)"
    HTTP = "http", "HTTP model server (TensorFlow Serving REST)"
    REKOGNITION = "rekognition", "AWS Rekognition"
    LEARNED = "learned", "Learned (pretrained backbone + trained heads, ONNX Runtime)"
    AZURE = "azure", "Azure AI Vision (Image Analysis)"
    CASCADE = "cascade", "Cascade (a local model first, a paid backend when unsure)"


class ModelVersion(models.Model):
    """A classifier configuration: its backend and parameters (thresholds, endpoints, label maps).

    At most one version is active per backend; every stored prediction names the version that made it.
    """

    class Status(models.TextChoices):
        CANDIDATE = "candidate"
        ACTIVE = "active"
        RETIRED = "retired"

    name = models.CharField(max_length=100, unique=True)
    backend = models.CharField(max_length=20, choices=Backend.choices, default=Backend.BUILTIN)
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CANDIDATE)
    metrics = models.JSONField(default=dict, blank=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    promoted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["backend"], condition=Q(status="active"), name="one_active_model_version_per_backend"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.backend}, {self.status})"


class Image(models.Model):
    """One picture, identified by the SHA-256 of its bytes, whatever URLs it was seen at."""

    sha256 = models.CharField(max_length=64, unique=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=10, blank=True)
    byte_size = models.PositiveIntegerField(default=0)
    # 64-bit perceptual hash stored as a signed integer (bit pattern preserved); near-duplicates are
    # pictures whose hashes differ in few bits.
    phash = models.BigIntegerField(null=True, blank=True, db_index=True)
    thumbnail = models.ImageField(upload_to="thumbnails/", blank=True)
    classified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["created_at"])]

    def __str__(self) -> str:
        return f"{self.sha256[:12]} {self.width}×{self.height}"


class FetchError(models.TextChoices):
    """Why a URL could not be turned into a picture (stored on the source; http_<status> is also used)."""

    INVALID_URL = "invalid_url"
    BLOCKED_SCHEME = "blocked_scheme"
    BLOCKED_ADDRESS = "blocked_address"
    DNS = "dns"
    CONNECTION = "connection"
    TIMEOUT = "timeout"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    TOO_LARGE = "too_large"
    NOT_AN_IMAGE = "not_an_image"
    BAD_IMAGE = "bad_image"
    TOO_MANY_PIXELS = "too_many_pixels"


class ImageSource(models.Model):
    """A URL at which a picture was seen, with the validators its server gave for conditional requests."""

    url = models.TextField()
    url_hash = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the URL")
    image = models.ForeignKey(Image, null=True, blank=True, on_delete=models.SET_NULL, related_name="sources")
    etag = models.CharField(max_length=512, blank=True)
    last_modified = models.CharField(max_length=64, blank=True)
    content_length = models.BigIntegerField(null=True, blank=True)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=40, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    check_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.url


class Prediction(models.Model):
    """The classifier's current value for one attribute of one picture ("" when it returned none)."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="predictions")
    attribute = models.CharField(max_length=20, choices=Attribute.choices)
    value = models.CharField(max_length=40, blank=True)
    score = models.FloatField(null=True, blank=True)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="predictions")
    created_at = models.DateTimeField(default=timezone.now)
    # Why the value differs from what the backend said, e.g. "reused_across_vehicles" (empty: as classified).
    reason = models.CharField(max_length=60, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["image", "attribute"], name="one_prediction_per_attribute")]
        indexes = [models.Index(fields=["model_version", "image"], name="prediction_version_lookup")]

    def __str__(self) -> str:
        return f"{self.image_id}.{self.attribute}={self.value or '∅'}"


class GroundTruth(models.Model):
    """A label a person (or a crowd) gave a picture, with where it came from. Append-only.

    Fixes are ground truth too: the latest staff fix of (picture, attribute) applies everywhere, the latest
    advertiser fix only to that advertiser. Dataset export and model evaluation read only this table.
    """

    class Source(models.TextChoices):
        CONSENSUS = "consensus", "Crowd consensus"
        STAFF_FIX = "staff_fix", "Staff fix"
        ADVERTISER_FIX = "advertiser_fix", "Advertiser fix"
        ADJUDICATION = "adjudication", "Adjudication"
        IMPORT = "import", "Imported dataset"

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="ground_truths")
    attribute = models.CharField(max_length=20, choices=Attribute.choices)
    value = models.CharField(max_length=40)
    source = models.CharField(max_length=20, choices=Source.choices)
    # The advertiser's slug: the scope of an advertiser fix, and provenance for any other source.
    advertiser = models.CharField(max_length=100, blank=True, db_index=True)
    reference = models.CharField(max_length=200, blank=True, help_text='What produced it, e.g. "labeling.item:42"')
    url = models.TextField(blank=True, help_text="The URL the picture was seen at, for provenance")
    votes = models.PositiveIntegerField(null=True, blank=True)
    margin = models.PositiveIntegerField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["image", "attribute", "source", "-created_at"], name="gt_latest_lookup"),
            models.Index(fields=["attribute", "created_at"], name="gt_export_lookup"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(source="advertiser_fix") | ~Q(advertiser=""), name="advertiser_fix_names_advertiser"
            )
        ]

    def __str__(self) -> str:
        return f"{self.image_id}.{self.attribute}={self.value} ({self.source})"


class ImageLabel(models.Model):
    """One label a model version gave a picture (lower-cased, as the backend named it) and its score."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="labels")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="labels")
    name = models.CharField(max_length=100)
    score = models.FloatField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "model_version", "name"], name="one_label_per_image_version")
        ]
        indexes = [models.Index(fields=["name", "score"], name="label_search")]

    def __str__(self) -> str:
        return f"{self.image_id}:{self.name}={self.score:.2f}"


class BackendCall(models.Model):
    """One picture sent to one backend (the version called), with what it is estimated to have cost."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="backend_calls")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="calls")
    backend = models.CharField(max_length=20)
    cost = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["image", "created_at"], name="backend_call_lookup")]

    def __str__(self) -> str:
        return f"{self.image_id} → {self.backend} ({self.cost})"


class Embedding(models.Model):
    """A picture's features for the learned heads, computed once per backbone version: the backbone's
    embedding followed by the builtin histogram measures, float16. Keyed by the picture's SHA-256 (not a
    foreign key: pictures are embedded before their row exists), so retraining never re-decodes."""

    image_sha256 = models.CharField(max_length=64)
    backbone = models.CharField(max_length=64)
    vector = models.BinaryField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["image_sha256", "backbone"], name="one_embedding_per_backbone")]

    def __str__(self) -> str:
        return f"{self.image_sha256[:12]} @ {self.backbone}"
