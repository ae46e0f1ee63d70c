"""Filling a campaign with pictures: an advertiser's, a classification query's, the model's least sure, a random
sample, or a zip.

The same picture never enters a campaign twice (a database constraint; re-filling is harmless). Pictures
are chosen through classification's read-only selectors and collections, never its tables.
"""

import logging
import zipfile
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from classification import sampling
from classification.collections import collection_get
from core.errors import ApplicationError
from labeling.models import Campaign, Item

log = logging.getLogger(__name__)

ADVERTISER_COLLECTION = "advertiser"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")


class FillError(ApplicationError):
    """A fill that cannot be done as asked; the message says what to do instead."""

    code = "fill_refused"


@dataclass
class FillResult:
    added: int = 0
    already: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (file name, reason)

    def summary(self) -> str:
        text = f"{self.added} picture(s) added, {self.already} already in the campaign"
        if self.rejected:
            text += f", {len(self.rejected)} rejected"
        return text


def _check_gold(campaign: Campaign, gold_label: str) -> None:
    if gold_label and gold_label not in campaign.choices:
        raise FillError(f"gold answer {gold_label!r} is not one of {', '.join(campaign.choices)}")


@transaction.atomic
def campaign_fill(*, campaign: Campaign, image_ids: list[int], gold_label: str = "") -> FillResult:
    """Add pictures by id (gold items with ``gold_label`` when given); ones already present are skipped."""
    _check_gold(campaign, gold_label)
    ids = list(dict.fromkeys(sampling.images_existing(image_ids=list(image_ids))))
    present = set(Item.objects.filter(campaign=campaign, image_id__in=ids).values_list("image_id", flat=True))
    new = [i for i in ids if i not in present]
    Item.objects.bulk_create(
        [Item(campaign=campaign, image_id=i, is_gold=bool(gold_label), gold_label=gold_label) for i in new],
        ignore_conflicts=True,  # a concurrent fill may add the same picture; the constraint keeps it once
        batch_size=1000,
    )
    return FillResult(added=len(new), already=len(present))


def advertiser_fill_available() -> bool:
    return collection_get(ADVERTISER_COLLECTION) is not None


def advertiser_choices() -> list[tuple[str, str]]:
    collection = collection_get(ADVERTISER_COLLECTION)
    return collection.choices() if collection else []


def campaign_fill_advertiser(
    *, campaign: Campaign, advertiser: str, limit: int | None = None, seed: int | None = None, gold_label: str = ""
) -> FillResult:
    """Add the pictures of an advertiser's sitemap (as registered by the sitemaps app)."""
    collection = collection_get(ADVERTISER_COLLECTION)
    if collection is None:
        raise FillError("advertisers are not available here (the sitemaps app is not installed); use another source")
    if advertiser not in dict(collection.choices()):
        raise FillError(f"unknown advertiser {advertiser!r}")
    ids = list(collection.image_ids(advertiser))
    if limit is not None:
        ids = sampling.ids_sample(ids, limit=limit, seed=seed)
    return campaign_fill(campaign=campaign, image_ids=ids, gold_label=gold_label)


def campaign_fill_query(
    *,
    campaign: Campaign,
    attribute: str | None = None,
    value: str | None = None,
    score_below: float | None = None,
    limit: int | None = None,
    seed: int | None = None,
) -> FillResult:
    """Add pictures the classifier said ``value`` for (or scored below ``score_below``) on ``attribute``."""
    try:
        ids = sampling.images_matching(
            attribute=attribute or campaign.attribute, value=value, score_below=score_below, limit=limit, seed=seed
        )
    except ValueError as exc:
        raise FillError(str(exc)) from None
    return campaign_fill(campaign=campaign, image_ids=ids)


def campaign_fill_random(*, campaign: Campaign, count: int, seed: int | None = None) -> FillResult:
    """Add ``count`` pictures chosen at random among those not yet in the campaign."""
    if count < 1:
        raise FillError("ask for at least one picture")
    present = set(Item.objects.filter(campaign=campaign).values_list("image_id", flat=True))
    ids = sampling.images_random(limit=count, seed=seed, exclude_ids=present)
    return campaign_fill(campaign=campaign, image_ids=ids)


def campaign_fill_least_sure(*, campaign: Campaign, count: int) -> FillResult:
    """Add the ``count`` pictures the model is least sure of for the campaign's attribute, leaving out those
    already in it or already labelled: the crowd labels what the model cannot (active learning)."""
    present = set(Item.objects.filter(campaign=campaign).values_list("image_id", flat=True))
    try:
        ids = sampling.images_least_sure(attribute=campaign.attribute, limit=count, exclude_ids=present)
    except ValueError as exc:
        raise FillError(str(exc)) from None
    return campaign_fill(campaign=campaign, image_ids=ids)


def campaign_fill_zip(*, campaign: Campaign, path: str, gold_label: str = "") -> FillResult:
    """Ingest every picture of a zip (read from the default storage at ``path``) and add it.

    Hostile input: entry count, per-entry and total sizes are capped before anything is decompressed, and
    each entry's bytes are read with a cap (zip headers can lie); decoding is classification's job.
    """
    from django.core.files.storage import default_storage

    from classification.imaging import ImageRejected
    from classification.services import image_from_bytes

    _check_gold(campaign, gold_label)
    max_files = settings.LABELING_ZIP_MAX_FILES
    max_entry = settings.SPOTCHECK_FETCH_MAX_BYTES
    max_total = settings.LABELING_ZIP_MAX_BYTES
    result = FillResult()
    image_ids: list[int] = []
    with default_storage.open(path, "rb") as handle:
        try:
            archive = zipfile.ZipFile(handle)
        except zipfile.BadZipFile:
            raise FillError("the upload is not a zip file") from None
        with archive:
            entries = [
                info
                for info in archive.infolist()
                if not info.is_dir()
                and not info.filename.startswith("__MACOSX/")
                and not info.filename.rsplit("/", 1)[-1].startswith(".")
            ]
            if len(entries) > max_files:
                raise FillError(f"the zip holds {len(entries)} files; at most {max_files} per upload")
            if sum(info.file_size for info in entries) > max_total:
                raise FillError(f"the zip expands beyond {max_total // (1024 * 1024)} MB; split it")
            for info in entries:
                name = info.filename
                if not name.lower().endswith(IMAGE_SUFFIXES):
                    result.rejected.append((name, "not a picture file"))
                    continue
                if info.file_size > max_entry:
                    result.rejected.append((name, "too_large"))
                    continue
                with archive.open(info) as member:
                    data = member.read(max_entry + 1)
                if len(data) > max_entry:
                    result.rejected.append((name, "too_large"))
                    continue
                try:
                    image = image_from_bytes(data=data)
                except ImageRejected as exc:
                    result.rejected.append((name, exc.reason))
                    continue
                image_ids.append(image.pk)
    added = campaign_fill(campaign=campaign, image_ids=image_ids, gold_label=gold_label)
    result.added, result.already = added.added, added.already
    log.info(
        "campaign zip fill",
        extra={"campaign_id": campaign.pk, "added": result.added, "rejected": len(result.rejected)},
    )
    return result
