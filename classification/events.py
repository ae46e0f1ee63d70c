"""Bucket events: a picture landing in storage is classified without anyone asking.

* S3 event notifications delivered by an SNS HTTPS subscription. Every message's signature is verified
  (SignatureVersion 1: SHA1withRSA, 2: SHA256withRSA) against the signing certificate, fetched through the
  guarded downloader only from a URL matching SPOTCHECK_SNS_CERT_URL_PATTERN (https, an SNS host of AWS,
  a .pem path) and cached; only topics in SPOTCHECK_SNS_TOPIC_ARNS are accepted, and only messages signed
  within SPOTCHECK_SNS_MAX_AGE seconds (a replayed old message is refused). A SubscriptionConfirmation
  is confirmed by visiting its SubscribeURL (same host rule); ObjectCreated records of our bucket are queued.
* Azure Event Grid (Event Grid schema): the subscription's URL carries ``?key=SPOTCHECK_EVENTGRID_KEY``; the
  validation handshake answers ``{"validationResponse": code}``; BlobCreated events whose blob URL starts
  with one of SPOTCHECK_EVENTGRID_BLOB_PREFIXES are classified through the guarded URL pipeline.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import re
from dataclasses import dataclass, field
from urllib.parse import unquote_plus, urlparse

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from classification.bucket import bucket_name
from classification.fetch import FetchFailed, fetch
from core.errors import ApplicationError
from core.json_input import json_checked

logger = logging.getLogger(__name__)

MAX_BODY = 256 * 1024  # SNS messages are at most 256 KiB; Event Grid batches at most 1 MB of events
CERT_MAX_BYTES = 16 * 1024
CERT_CACHE_SECONDS = 24 * 3600

# The keys signed, in order, per message type (absent keys are skipped: Subject is optional).
SIGNED_KEYS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}


class EventRefused(ApplicationError):
    """An event we will not act on; ``code`` and ``status`` are what the endpoint answers."""

    def __init__(self, code: str, message: str, *, status: int = 400) -> None:
        super().__init__(message, code=code, status=status)


@dataclass
class Handled:
    """What an event delivery led to: objects queued, and an answer body when the sender expects one."""

    queued: list[str] = field(default_factory=list)
    answer: dict = field(default_factory=dict)


def _json(body: bytes):
    if len(body) > MAX_BODY:
        raise EventRefused("too_large", f"An event delivery is at most {MAX_BODY} bytes.", status=413)
    return _loads(body, refusal="The body is not JSON")


def _loads(text: bytes | str, *, refusal: str):
    """JSON checked like every request body (core.json_input): no deep nesting, NUL, lone surrogate or
    out-of-range integer reaches a task's arguments (PostgreSQL could not store them in the outbox)."""
    try:
        return json_checked(json.loads(text))
    except RecursionError:
        raise EventRefused("invalid", f"{refusal}: nested too deeply.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventRefused("invalid", f"{refusal}: {exc}") from exc


# --- SNS ------------------------------------------------------------------------------------------------


def sns_string_to_sign(message: dict) -> bytes:
    """The canonical text SNS signs: each signed key present, as ``key\\nvalue\\n``."""
    keys = SIGNED_KEYS.get(message.get("Type", ""))
    if keys is None:
        raise EventRefused("invalid", f"Unknown SNS message type {message.get('Type')!r}.")
    parts = []
    for key in keys:
        if key in message and message[key] is not None:
            parts.append(f"{key}\n{message[key]}\n")
        elif key != "Subject":
            raise EventRefused("invalid", f"The SNS message has no {key}.")
    return "".join(parts).encode()


def _certificate(url: str):
    from cryptography import x509

    if not re.match(settings.SPOTCHECK_SNS_CERT_URL_PATTERN, url or ""):
        raise EventRefused(
            "untrusted_certificate", "The signing certificate is not on an allowed SNS host.", status=403
        )
    pem = cache.get(f"sns:cert:{url}")
    if pem is None:
        try:
            pem = fetch(url, max_bytes=CERT_MAX_BYTES).content
        except FetchFailed as exc:
            raise EventRefused("certificate_unavailable", f"The signing certificate: {exc.reason}", status=502) from exc
        cache.set(f"sns:cert:{url}", pem, CERT_CACHE_SECONDS)
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise EventRefused(
            "untrusted_certificate", "The signing certificate is not a PEM certificate.", status=403
        ) from exc


def sns_verify(message: dict) -> None:
    """Raise EventRefused unless the message comes from an accepted topic and its signature is valid."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    if message.get("TopicArn") not in settings.SPOTCHECK_SNS_TOPIC_ARNS:
        raise EventRefused("unknown_topic", "Notifications from this topic are not accepted.", status=403)
    algorithm = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(str(message.get("SignatureVersion")))
    if algorithm is None:
        raise EventRefused("invalid_signature", "Unknown SNS SignatureVersion.", status=403)
    try:
        signature = base64.b64decode(message.get("Signature") or "", validate=True)
    except ValueError as exc:
        raise EventRefused("invalid_signature", "The signature is not base64.", status=403) from exc
    data = sns_string_to_sign(message)
    public_key = _certificate(message.get("SigningCertURL", "")).public_key()
    try:
        public_key.verify(signature, data, padding.PKCS1v15(), algorithm)
    except (InvalidSignature, TypeError, ValueError) as exc:
        raise EventRefused("invalid_signature", "The SNS signature does not verify.", status=403) from exc
    sent = parse_datetime(str(message.get("Timestamp", "")))
    if sent is None or abs((timezone.now() - sent).total_seconds()) > settings.SPOTCHECK_SNS_MAX_AGE:
        # A genuine but old message replayed: SNS delivers within minutes, and retries for at most an hour.
        raise EventRefused("stale", "The SNS message is too old (or from the future).", status=403)


def s3_created_keys(event: dict) -> list[str]:
    """``s3://bucket/key`` of each ObjectCreated record of our bucket (keys arrive URL-encoded, + for space)."""
    ours = bucket_name()
    uris = []
    for record in event.get("Records") or []:
        if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        s3 = record.get("s3") or {}
        bucket = (s3.get("bucket") or {}).get("name")
        key = unquote_plus(str((s3.get("object") or {}).get("key") or ""))
        if bucket != ours or not key or key.endswith("/"):
            logger.info("bucket event for %s/%s ignored (our bucket is %s)", bucket, key, ours)
            continue
        uris.append(f"s3://{bucket}/{key}")
    return uris


def sns_handle(*, body: bytes) -> Handled:
    """Verify one SNS delivery and act on it: confirm a subscription, or queue the objects it announces."""
    message = _json(body)
    if not isinstance(message, dict):
        raise EventRefused("invalid", "An SNS message is a JSON object.")
    sns_verify(message)
    kind = message["Type"]
    if kind == "SubscriptionConfirmation":
        url = message.get("SubscribeURL", "")
        if not re.match(settings.SPOTCHECK_SNS_SUBSCRIBE_URL_PATTERN, url):
            raise EventRefused("untrusted_subscribe_url", "The SubscribeURL is not on an allowed SNS host.", status=403)
        try:
            fetch(url, max_bytes=64 * 1024)
        except FetchFailed as exc:
            raise EventRefused("confirmation_failed", f"Confirming the subscription: {exc.reason}", status=502) from exc
        logger.info("SNS subscription to %s confirmed", message.get("TopicArn"))
        return Handled(answer={"confirmed": message.get("TopicArn")})
    if kind == "UnsubscribeConfirmation":
        return Handled()
    raw = message.get("Message") or "{}"
    if not isinstance(raw, str):
        raise EventRefused("invalid", "The notification's Message is not an S3 event.")
    event = _loads(raw, refusal="The notification's Message is not an S3 event")
    uris = s3_created_keys(event if isinstance(event, dict) else {})
    _enqueue_objects(uris)
    return Handled(queued=uris)


def _enqueue_objects(uris: list[str]) -> None:
    from classification.tasks.bucket import bucket_object_classify
    from core.outbox import enqueue_on_commit

    for uri in uris:
        enqueue_on_commit(bucket_object_classify, uri)


# --- Event Grid -----------------------------------------------------------------------------------------


def eventgrid_handle(*, body: bytes, key: str) -> Handled:
    """Answer the validation handshake, or queue the blobs that BlobCreated events announce."""
    expected = settings.SPOTCHECK_EVENTGRID_KEY
    if not expected or not hmac.compare_digest(key.encode(), expected.encode()):
        raise EventRefused("forbidden", "Event Grid deliveries must carry the configured key.", status=403)
    events = _json(body)
    if not isinstance(events, list):
        raise EventRefused("invalid", "An Event Grid delivery is a JSON array of events.")
    urls = []
    for event in events:
        if not isinstance(event, dict):
            continue
        kind, data = event.get("eventType"), event.get("data") or {}
        if kind == "Microsoft.EventGrid.SubscriptionValidationEvent":
            return Handled(answer={"validationResponse": data.get("validationCode")})
        if kind != "Microsoft.Storage.BlobCreated":
            continue
        url = str(data.get("url") or "")
        if any(url.startswith(prefix) for prefix in settings.SPOTCHECK_EVENTGRID_BLOB_PREFIXES) and _plain(url):
            urls.append(url)
        else:
            logger.info("Event Grid blob %s ignored: not under an allowed prefix", url)
    if urls:
        from classification.dispatch import urls_enqueue

        urls_enqueue(urls=urls)
    return Handled(queued=urls)


def _plain(url: str) -> bool:
    """A blob URL without query, credentials or dot segments (so the prefix check cannot be walked out of)."""
    parsed = urlparse(url)
    segments = parsed.path.split("/")
    return (
        parsed.scheme in {"http", "https"}
        and not parsed.query
        and "@" not in parsed.netloc
        and "\\" not in url
        and not any(segment in {".", ".."} for segment in segments)
    )
