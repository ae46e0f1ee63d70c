"""Celery tasks of the labeling app: thin wrappers that load by id and call a service."""

import logging

from celery import shared_task

from labeling.assignment import leases_expired_delete
from labeling.fill import FillError, campaign_fill_zip
from labeling.models import Campaign
from labeling.quality import standings_refresh

log = logging.getLogger(__name__)


@shared_task(name="labeling.tasks.leases_sweep")
def leases_sweep() -> int:
    """Delete expired leases (periodic; assignment already ignores them)."""
    return leases_expired_delete()


@shared_task(name="labeling.tasks.quality_sweep")
def quality_sweep() -> int:
    """Recount gold answers of labelers active on gold lately and flag those below the bar (periodic).
    The window is wider than the schedule, so a missed run loses nothing."""
    from datetime import timedelta

    return len(standings_refresh(window=timedelta(minutes=15)))


# The storage or the database briefly unreachable: retried by the one policy (core.retry, every task's class).
@shared_task(name="labeling.tasks.campaign_zip_ingest")
def campaign_zip_ingest(campaign_id: int, path: str, gold_label: str = "") -> dict:
    """Ingest an uploaded zip into a campaign, then delete the upload. Safe to run twice: pictures are
    keyed by their bytes and enter a campaign once."""
    from django.core.files.storage import default_storage

    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None or not default_storage.exists(path):
        return {"added": 0, "skipped": "gone"}
    try:
        result = campaign_fill_zip(campaign=campaign, path=path, gold_label=gold_label)
    except FillError as exc:
        log.warning("campaign zip rejected", extra={"campaign_id": campaign_id, "reason": str(exc)})
        default_storage.delete(path)
        return {"added": 0, "error": str(exc)}
    default_storage.delete(path)
    return {"added": result.added, "already": result.already, "rejected": len(result.rejected)}
