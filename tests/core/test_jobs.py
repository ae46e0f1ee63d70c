"""core/jobs.py: one claim and one run-with-failure-capture for every job-like row (here an export)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from core.jobs import JobStatus, job_claim, job_run
from datasets.models import DatasetExport

pytestmark = pytest.mark.django_db


@pytest.fixture
def job():
    return DatasetExport.objects.create(attribute="color")


def _status(job):
    job.refresh_from_db()
    return job.status


def test_a_queued_job_is_claimed_once(job):
    assert job_claim(model=DatasetExport, pk=job.pk, lease_seconds=60)
    assert _status(job) == JobStatus.RUNNING and job.started_at is not None
    assert not job_claim(model=DatasetExport, pk=job.pk, lease_seconds=60)  # a second delivery does nothing


def test_a_job_running_past_its_lease_is_taken_over(job):
    DatasetExport.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, started_at=timezone.now() - timedelta(seconds=61), progress=40
    )
    assert job_claim(model=DatasetExport, pk=job.pk, lease_seconds=60, file="")
    job.refresh_from_db()
    assert (job.status, job.progress) == (JobStatus.RUNNING, 0)


def test_a_run_that_fails_records_the_error_and_re_raises(job):
    def work():
        raise OSError("storage went away")

    with pytest.raises(OSError):
        job_run(rows=DatasetExport.objects.filter(pk=job.pk), work=work)
    job.refresh_from_db()
    assert (job.status, job.error) == (JobStatus.FAILED, "OSError: storage went away")
    assert job.finished_at is not None


def test_a_run_that_succeeds_is_done_with_the_fields_its_result_gives(job):
    result = job_run(rows=DatasetExport.objects.filter(pk=job.pk), work=lambda: 12, done=lambda n: {"rows": n})
    job.refresh_from_db()
    assert result == 12
    assert (job.status, job.progress, job.rows) == (JobStatus.DONE, 100, 12)
