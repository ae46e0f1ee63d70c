"""Promotion: one active version per backend, switched atomically, even when two admins promote at once."""

import threading

import pytest
from django.db import connection

from classification.models import ModelVersion
from classification.promotion import model_promote
from datasets.training import TrainingError, parameter_settings
from tests.support import needs_postgres


@pytest.fixture
def no_versions():
    """The migration's builtin-1 is active; these tests set up their own versions."""
    ModelVersion.objects.all().delete()


@pytest.mark.django_db
def test_promotion_retires_the_active_version_and_activates_the_candidate(no_versions):
    old = ModelVersion.objects.create(name="old", status=ModelVersion.Status.ACTIVE)
    new = ModelVersion.objects.create(name="new", status=ModelVersion.Status.CANDIDATE)

    model_promote(model_version_id=new.pk, enqueue=False)

    old.refresh_from_db()
    new.refresh_from_db()
    assert (old.status, new.status) == (ModelVersion.Status.RETIRED, ModelVersion.Status.ACTIVE)
    assert new.promoted_at is not None


@pytest.mark.django_db
def test_promoting_the_active_version_again_changes_nothing(no_versions):
    active = ModelVersion.objects.create(name="a", status=ModelVersion.Status.ACTIVE)
    model_promote(model_version_id=active.pk, enqueue=False)
    active.refresh_from_db()
    assert active.status == ModelVersion.Status.ACTIVE and active.promoted_at is None


@pytest.mark.django_db
def test_promote_page_switches_versions_and_enqueues_reclassification(
    admin_client, django_capture_on_commit_callbacks, monkeypatch, no_versions
):
    planned = []
    monkeypatch.setattr(
        "classification.tasks.promotion.reclassify_plan_task.delay", lambda version_id: planned.append(version_id)
    )
    ModelVersion.objects.create(name="old", status=ModelVersion.Status.ACTIVE)
    new = ModelVersion.objects.create(name="new")

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/models/{new.pk}/promote/")

    assert response.status_code == 302
    assert ModelVersion.objects.get(status=ModelVersion.Status.ACTIVE) == new
    assert planned == [new.pk]


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_two_admins_promoting_at_once_leave_exactly_one_active_version(no_versions):
    ModelVersion.objects.create(name="old", status=ModelVersion.Status.ACTIVE)
    candidates = [ModelVersion.objects.create(name=f"c{i}") for i in range(4)]
    barrier = threading.Barrier(len(candidates))
    errors = []

    def promote(version_id):
        try:
            barrier.wait()
            model_promote(model_version_id=version_id, enqueue=False)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=promote, args=(c.pk,)) for c in candidates]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).count() == 1
    assert ModelVersion.objects.filter(status=ModelVersion.Status.RETIRED).count() == 4


def test_parameter_settings_are_distinct_start_from_the_base_and_are_repeatable():
    base = {
        "stock_min_concentration": 0.6,
        "stock_min_white_border": 0.8,
        "placeholder_max_foreground": 0.2,
        "placeholder_min_concentration": 0.9,
        "analysis_side": 160,
    }
    settings = parameter_settings(base=base, attribute="image_type", count=12, seed=1)
    assert len(settings) == 12 and settings[0] == base
    assert len({tuple(sorted(s.items())) for s in settings}) == 12
    assert all(s["analysis_side"] == 160 for s in settings)  # measurement parameters stay put
    assert all(0 <= s[k] <= 1 for s in settings for k in base if k != "analysis_side")
    assert settings == parameter_settings(base=base, attribute="image_type", count=12, seed=1)
    with pytest.raises(TrainingError):
        parameter_settings(base={"analysis_side": 160}, attribute="image_type", count=4)
