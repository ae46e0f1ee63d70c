"""Pictures in our own bucket: ``s3://bucket/key`` references (only the configured bucket, read through the
default storage's boto3 connection with the same byte cap as a download), listing a prefix for a backfill,
and classifying an object as a picture seen at its ``s3://`` address."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.core.files.storage import default_storage

from classification.services import ClassifyOutcome, bytes_classify
from core.errors import ApplicationError

SCHEME = "s3://"


class BucketRefused(ApplicationError):
    """A storage reference we will not read: ``code`` and ``status`` are what the API answers."""

    def __init__(self, code: str, message: str, *, status: int = 400) -> None:
        super().__init__(message, code=code, status=status)


def bucket_name() -> str | None:
    """The bucket behind the default storage, or None when media are not on S3."""
    return getattr(default_storage, "bucket_name", None) or None


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"


def object_ref(uri: str) -> ObjectRef:
    """Parse ``s3://bucket/key``; only our bucket is accepted. Raises BucketRefused."""
    ours = bucket_name()
    if ours is None:
        raise BucketRefused("no_bucket", "No bucket is configured (AWS_STORAGE_BUCKET_NAME), so no key can be read.")
    if not uri.startswith(SCHEME) or "/" not in uri[len(SCHEME) :]:
        raise BucketRefused("invalid_key", f'A storage key looks like "s3://{ours}/path/picture.jpg".')
    bucket, key = uri[len(SCHEME) :].split("/", 1)
    if bucket != ours:
        raise BucketRefused("foreign_bucket", f"Only keys in the bucket {ours!r} can be classified.", status=403)
    if not key or key.endswith("/") or len(key) > 1024:
        raise BucketRefused("invalid_key", "The key must name one object (at most 1,024 characters).")
    return ObjectRef(bucket=bucket, key=key)


def object_read(ref: ObjectRef) -> bytes:
    """The object's bytes, refused above SPOTCHECK_FETCH_MAX_BYTES before they are read. Raises BucketRefused."""
    from botocore.exceptions import BotoCoreError, ClientError

    cap = settings.SPOTCHECK_FETCH_MAX_BYTES
    obj = default_storage.bucket.Object(ref.key)
    try:
        if obj.content_length > cap:
            raise BucketRefused("too_large", f"The object has {obj.content_length} bytes; at most {cap}.", status=413)
        data = obj.get()["Body"].read(cap + 1)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in {"404", "NoSuchKey", "NotFound"}:
            raise BucketRefused("not_found", f"No object {ref.uri}.", status=404) from exc
        raise BucketRefused("bucket_error", f"The bucket answered {code or 'an error'}.", status=502) from exc
    except BotoCoreError as exc:
        raise BucketRefused("bucket_unreachable", f"The bucket could not be read: {exc}", status=503) from exc
    if len(data) > cap:  # the object grew between the HEAD and the GET
        raise BucketRefused("too_large", f"The object has more than {cap} bytes.", status=413)
    return data


def object_classify(*, uri: str, advertiser: str | None = None) -> ClassifyOutcome:
    """Classify the picture stored at ``s3://bucket/key`` (its address recorded like a URL's)."""
    ref = object_ref(uri)
    return bytes_classify(data=object_read(ref), name=ref.uri, advertiser=advertiser, record_source=True)


def keys_list(*, prefix: str) -> Iterator[str]:
    """Every key under ``prefix`` in our bucket, page by page."""
    if bucket_name() is None:
        raise BucketRefused("no_bucket", "No bucket is configured (AWS_STORAGE_BUCKET_NAME).")
    for obj in default_storage.bucket.objects.filter(Prefix=prefix):
        if not obj.key.endswith("/"):
            yield obj.key
