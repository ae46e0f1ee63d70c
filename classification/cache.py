"""The classification cache: per picture, the classifier's values and the latest fixes, read through
Django's cache API in front of the database (Redis at scale). The database stays the source of truth.

An entry holds versioned slots: each ML attribute is versioned by when it was predicted, each fix by
(fix time, ground-truth id). Writes merge slot by slot and keep the newer, atomically (WATCH/MULTI on
Redis, a lock elsewhere), so an older push never replaces a newer one whatever order they arrive in.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.cache import cache as _cache
from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT

from classification.models import GroundTruth, Prediction
from classification.values import Fix, Resolved, resolve
from classification.vocabulary import ML_ATTRIBUTES
from core.outage import Unreachable

ENTRY_VERSION = 1  # bump when the entry layout changes: old entries are then simply misses
FIX_SOURCES = (GroundTruth.Source.STAFF_FIX, GroundTruth.Source.ADVERTISER_FIX)
_WATCH_ATTEMPTS = 20


class CacheUnavailable(Unreachable):
    """The cache could not be written (down, or contention beyond retries); the caller retries later."""


def key(image_id: int) -> str:
    return f"clf:v{ENTRY_VERSION}:image:{image_id}"


def _micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _ml_slot(prediction: Prediction, model_name: str) -> dict:
    return {
        "value": prediction.value or None,
        "score": prediction.score,
        "model": model_name,
        "reason": prediction.reason,
        "t": _micros(prediction.created_at),
        "id": prediction.pk or 0,
    }


def _fix_slot(gt: GroundTruth) -> dict:
    return {
        "value": gt.value,
        "user": gt.created_by_id,
        "advertiser": gt.advertiser,
        "t": _micros(gt.created_at),
        "id": gt.pk,
    }


def _newer(a: dict | None, b: dict | None) -> dict | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if (a["t"], a["id"]) >= (b["t"], b["id"]) else b


def entry_merge(current: dict | None, incoming: dict) -> dict:
    """Slot by slot, the newer version wins; pure, so every backend merges the same way."""
    if not current:
        return incoming
    merged = {"ml": dict(current.get("ml", {})), "staff": dict(current.get("staff", {})), "adv": {}}
    for attribute, slot in incoming.get("ml", {}).items():
        merged["ml"][attribute] = _newer(merged["ml"].get(attribute), slot)
    for attribute, slot in incoming.get("staff", {}).items():
        merged["staff"][attribute] = _newer(merged["staff"].get(attribute), slot)
    for slug in set(current.get("adv", {})) | set(incoming.get("adv", {})):
        mine, theirs = current.get("adv", {}).get(slug, {}), incoming.get("adv", {}).get(slug, {})
        merged["adv"][slug] = {a: _newer(mine.get(a), theirs.get(a)) for a in set(mine) | set(theirs)}
    return merged


def entries_build(image_ids: Iterable[int]) -> dict[int, dict]:
    """Entries from the database (two queries): predictions with their model names, and the latest fixes."""
    ids = list(image_ids)
    entries: dict[int, dict] = {i: {"ml": {}, "staff": {}, "adv": {}} for i in ids}
    predictions = Prediction.objects.filter(image_id__in=ids).select_related("model_version")
    for p in predictions.only(
        "id", "image_id", "attribute", "value", "score", "reason", "created_at", "model_version__name"
    ):
        entries[p.image_id]["ml"][p.attribute] = _ml_slot(p, p.model_version.name)
    fixes = GroundTruth.objects.filter(image_id__in=ids, source__in=FIX_SOURCES).only(
        "id", "image_id", "attribute", "value", "source", "advertiser", "created_by_id", "created_at"
    )
    for gt in fixes:
        entry = entries[gt.image_id]
        if gt.source == GroundTruth.Source.STAFF_FIX:
            entry["staff"][gt.attribute] = _newer(entry["staff"].get(gt.attribute), _fix_slot(gt))
        else:
            slot = entry["adv"].setdefault(gt.advertiser, {})
            slot[gt.attribute] = _newer(slot.get(gt.attribute), _fix_slot(gt))
    return entries


def entries_get(*, image_ids: Iterable[int]) -> dict[int, dict]:
    """Entries for many pictures: one cache round trip, and the misses read from the database and added.

    ``add`` (not ``set``) so that a fix pushed while we were reading is never overwritten by our older copy.
    A cache that is down only costs speed: the database answers.
    """
    ids = list(dict.fromkeys(image_ids))
    keys = {key(i): i for i in ids}
    reachable = True
    try:
        found = _cache.get_many(list(keys))
    except Exception:  # noqa: BLE001 - a cache outage must never break a read
        found, reachable = {}, False
    entries = {keys[k]: v for k, v in found.items()}
    missing = [i for i in ids if i not in entries]
    if missing:
        built = entries_build(missing)
        for image_id, entry in built.items():
            entries[image_id] = entry
            if not reachable:
                continue  # do not wait for a connect timeout per picture
            try:
                _cache.add(key(image_id), entry, timeout=DEFAULT_TIMEOUT)
            except Exception:  # noqa: BLE001 - the database answered; the cache fills in later
                reachable = False
    return entries


def _fix(slot: dict | None, source: str) -> Fix | None:
    if not slot:
        return None
    return Fix(
        value=slot["value"],
        source=source,
        advertiser=slot.get("advertiser", ""),
        user_id=slot.get("user"),
        at=datetime.fromtimestamp(slot["t"] / 1_000_000, tz=UTC),
        ground_truth_id=slot["id"],
    )


def entry_values(entry: dict, *, advertiser: str | None, attributes: tuple[str, ...] = ML_ATTRIBUTES) -> dict:
    """attribute → Resolved for one cached entry, with the same precedence as the database selector."""
    resolved: dict[str, Resolved] = {}
    adv = entry.get("adv", {}).get(advertiser, {}) if advertiser else {}
    for attribute in attributes:
        ml = entry.get("ml", {}).get(attribute) or {}
        resolved[attribute] = resolve(
            attribute=attribute,
            ml_value=ml.get("value"),
            ml_score=ml.get("score"),
            staff_fix=_fix(entry.get("staff", {}).get(attribute), GroundTruth.Source.STAFF_FIX),
            advertiser_fix=_fix(adv.get(attribute), GroundTruth.Source.ADVERTISER_FIX),
        )
    return resolved


def entry_model(entry: dict) -> str | None:
    """The model version that produced the entry's image type (or any ML value)."""
    ml = entry.get("ml", {})
    for attribute in ML_ATTRIBUTES:
        if ml.get(attribute):
            return ml[attribute]["model"]
    return None


# --- atomic update --------------------------------------------------------------------------------------


def _backend():
    """The configured backend itself (``cache`` is a proxy to it)."""
    return caches["default"]


def _is_redis() -> bool:
    from django.core.cache.backends.redis import RedisCache

    return isinstance(_backend(), RedisCache)


@functools.lru_cache(maxsize=4)
def _redis_client(location: str, options: tuple):
    import redis

    return redis.Redis.from_url(location, **dict(options))


def _redis_connection():
    """A redis-py client of our own on the cache's server (the first one, where Django's RedisCache writes)
    and the serializer Django's RedisCache uses, so what is written here reads back through ``cache.get``.

    Why not the backend's own client: Django's RedisCache has no WATCH/MULTI, and its client is private
    (``backend._cache.get_client``). tests/classification/test_cache_redis_client.py fails if the two ever
    stop agreeing on keys or values."""
    from django.core.cache.backends.redis import RedisSerializer

    config = settings.CACHES["default"]
    location = config["LOCATION"]
    servers = location if isinstance(location, list | tuple) else str(location).split(",")
    options = tuple(sorted(config.get("OPTIONS", {}).items()))
    return _redis_client(servers[0].strip(), options), RedisSerializer()


def _update_redis(name: str, mutate: Callable[[dict | None], dict | None]) -> None:
    from redis.exceptions import RedisError, WatchError

    backend = _backend()
    full_key = backend.make_and_validate_key(name)
    timeout = backend.get_backend_timeout(DEFAULT_TIMEOUT)
    try:
        client, serializer = _redis_connection()
        with client.pipeline() as pipe:
            for _ in range(_WATCH_ATTEMPTS):
                try:
                    pipe.watch(full_key)
                    raw = pipe.get(full_key)
                    current = serializer.loads(raw) if raw is not None else None
                    new = mutate(current)
                    if new is None or new == current:
                        pipe.unwatch()
                        return
                    pipe.multi()
                    if timeout is None:
                        pipe.set(full_key, serializer.dumps(new))
                    else:
                        pipe.set(full_key, serializer.dumps(new), ex=max(1, int(timeout)))
                    pipe.execute()
                    return
                except WatchError:
                    continue  # someone wrote in between: read again and merge again
    except RedisError as exc:
        raise CacheUnavailable(str(exc)) from exc
    raise CacheUnavailable(f"{name}: still contended after {_WATCH_ATTEMPTS} attempts")


_thread_lock = threading.Lock()


@contextlib.contextmanager
def _fallback_lock():
    """Threads in this process, and processes on this host (web and worker share the file cache)."""
    lock_path = Path(settings.VAR_DIR) / "classification-cache.lock"
    with _thread_lock, open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _update(name: str, mutate: Callable[[dict | None], dict | None]) -> None:
    if _is_redis():
        _update_redis(name, mutate)
        return
    try:
        with _fallback_lock():
            current = _cache.get(name)
            new = mutate(current)
            if new is not None and new != current:
                _cache.set(name, new, timeout=DEFAULT_TIMEOUT)
    except Exception as exc:  # whatever the backend raised, the push did not happen
        raise CacheUnavailable(f"{exc.__class__.__name__}: {exc}") from exc


def entries_refresh(*, image_ids: Iterable[int]) -> None:
    """Merge what the database holds for these pictures into their entries (after classifying or
    reclassifying): one database read, one merge per picture."""
    built = entries_build(list(image_ids))
    # Most pictures refreshed were never cached (just classified): on Redis one SET NX each, all in one
    # round trip; an entry that exists (a fix, an older copy) is merged as before.
    added = _add_many(built) if _is_redis() else set()
    for image_id, entry in built.items():
        if image_id not in added:
            _update(key(image_id), lambda current, entry=entry: entry_merge(current, entry))


def _add_many(entries: dict[int, dict]) -> set[int]:
    """SET NX each picture's entry in one pipeline; the pictures whose entry was written (none existed)."""
    from redis.exceptions import RedisError

    if not entries:
        return set()
    backend = _backend()
    timeout = backend.get_backend_timeout(DEFAULT_TIMEOUT)
    expiry = None if timeout is None else max(1, int(timeout))
    try:
        client, serializer = _redis_connection()
        with client.pipeline(transaction=False) as pipe:
            for image_id, entry in entries.items():
                pipe.set(backend.make_and_validate_key(key(image_id)), serializer.dumps(entry), ex=expiry, nx=True)
            written = pipe.execute()
    except RedisError as exc:
        raise CacheUnavailable(f"{exc.__class__.__name__}: {exc}") from exc
    return {image_id for image_id, ok in zip(entries, written, strict=True) if ok}


def fix_push(*, ground_truth_id: int) -> None:
    """Write a fix (a staff_fix or advertiser_fix GroundTruth row) into its picture's entry.

    Raises CacheUnavailable when the cache cannot be written, so the caller's outbox retries; an older
    fix arriving after a newer one changes nothing.
    """
    gt = GroundTruth.objects.get(pk=ground_truth_id)
    if gt.source not in FIX_SOURCES:
        raise ValueError(f"ground truth {ground_truth_id} is a {gt.source}, not a fix")
    slot = _fix_slot(gt)
    if gt.source == GroundTruth.Source.STAFF_FIX:
        incoming = {"ml": {}, "staff": {gt.attribute: slot}, "adv": {}}
    else:
        incoming = {"ml": {}, "staff": {}, "adv": {gt.advertiser: {gt.attribute: slot}}}

    def mutate(current: dict | None) -> dict:
        if current is None:
            # Not cached yet: start from the database, which already holds this fix (it is committed).
            current = entries_build([gt.image_id])[gt.image_id]
        return entry_merge(current, incoming)

    _update(key(gt.image_id), mutate)


def _pushed_since(entry: dict | None, since: int) -> dict:
    """Only the slots of ``entry`` written at or after ``since`` (microseconds)."""
    if not entry:
        return {"ml": {}, "staff": {}, "adv": {}}
    return {
        "ml": {a: s for a, s in entry.get("ml", {}).items() if s and s["t"] >= since},
        "staff": {a: s for a, s in entry.get("staff", {}).items() if s and s["t"] >= since},
        "adv": {
            slug: {a: s for a, s in slots.items() if s and s["t"] >= since}
            for slug, slots in entry.get("adv", {}).items()
        },
    }


def cache_rebuild(*, chunk_size: int = 500, stdout=None) -> int:
    """Replace every picture's entry with what the database holds (``manage.py cache_rebuild``).

    Whatever the cache held is dropped, except slots pushed after this chunk was read from the database
    (a fix saved while rebuilding must survive). Returns how many entries were written.
    """
    from django.utils import timezone

    from classification.models import Image

    count = 0
    ids = list(Image.objects.order_by("id").values_list("id", flat=True))
    for start in range(0, len(ids), chunk_size):
        chunk = ids[start : start + chunk_size]
        # A minute of margin: a fix created just before the read but committed just after it is kept.
        read_at = _micros(timezone.now()) - 60_000_000
        built = entries_build(chunk)
        for image_id, entry in built.items():
            _update(
                key(image_id),
                lambda current, entry=entry, since=read_at: entry_merge(entry, _pushed_since(current, since)),
            )
        count += len(chunk)
        if stdout is not None:
            stdout.write(f"{count}/{len(ids)} entries rebuilt\n")
    return count


# --- fixes of pictures never downloaded -----------------------------------------------------------------


def url_key(url: str) -> str:
    return f"clf:v{ENTRY_VERSION}:url:{hashlib.sha256(url.encode('utf-8', 'surrogatepass')).hexdigest()}"


def url_fix_push(
    *, url: str, attribute: str, value: str, advertiser: str | None, user_id: int | None, at: datetime, fix_id: int
) -> None:
    """Write a fix of a picture not downloaded yet into its URL's entry (same slots and merge as a picture's
    entry; ``advertiser`` None for a staff fix). Once downloaded, the fix is recorded on the picture and
    pushed to the picture's entry; this one only answers for the URL meanwhile."""
    slot = {"value": value, "user": user_id, "advertiser": advertiser or "", "t": _micros(at), "id": fix_id}
    if advertiser:
        incoming = {"ml": {}, "staff": {}, "adv": {advertiser: {attribute: slot}}}
    else:
        incoming = {"ml": {}, "staff": {attribute: slot}, "adv": {}}
    _update(url_key(url), lambda current: entry_merge(current, incoming))


def url_entry_get(*, url: str) -> dict | None:
    """The fixes pushed for a URL whose picture was never downloaded, if any (None when the cache is down)."""
    try:
        return _cache.get(url_key(url))
    except Exception:  # noqa: BLE001 - a cache outage must never break a read
        return None
