"""A re-check chunk for real (classification's stage 1 with every answer a 304): what it writes, what it
costs in SQL statements (so that the count cannot grow back), and that fixes still follow the rows it
reads once."""

import pytest
from django.utils import timezone

from classification import services as classification_services
from classification.fetch import Fetched
from classification.models import ImageSource
from classification.services import url_hash
from sitemaps import classify_run
from sitemaps.fixes import FixChange, fixes_apply
from sitemaps.ingest import scrape_ingest
from sitemaps.models import ManualFix, VehicleImage
from tests.sitemaps.factories import ImageFactory, inventory, predict

pytestmark = pytest.mark.django_db

ETAG = '"v1"'
LAST_MODIFIED = "Wed, 21 Oct 2026 07:28:00 GMT"


@pytest.fixture
def answers_304(monkeypatch):
    """Every download answers 304 Not Modified to the validators it was sent; records what was asked."""
    asked = []

    def fetch(url, *, etag="", last_modified="", max_bytes=None, deadline=None):
        asked.append((url, etag, last_modified))
        return Fetched(url=url, status=304, content=None, etag=etag, last_modified=last_modified)

    monkeypatch.setattr(classification_services, "fetch", fetch)
    return asked


def known(url, image=None):
    """A URL whose picture is stored and classified, with the validators its server gave."""
    image = image or ImageFactory(classified_at=timezone.now())
    ImageSource.objects.create(
        url=url, url_hash=url_hash(url), image=image, etag=ETAG, last_modified=LAST_MODIFIED, last_status=200
    )
    return image


def rescrape(advertiser, vehicles, django_capture_on_commit_callbacks):
    """The inventory posted again: every visible row pending under a new scrape (its chunks not sent)."""
    with django_capture_on_commit_callbacks(execute=False):
        scrape = scrape_ingest(advertiser=advertiser, vehicles=inventory(vehicles))
    ids = list(VehicleImage.objects.filter(scrape=scrape).order_by("id").values_list("id", flat=True))
    return scrape, ids


@pytest.fixture
def rechecked_sitemap(advertiser, django_capture_on_commit_callbacks):
    """204 pictures classified by an earlier run, then the same inventory posted again."""
    vehicles = [12] * 17
    _scrape, ids = rescrape(advertiser, vehicles, django_capture_on_commit_callbacks)
    for row in VehicleImage.objects.filter(id__in=ids):
        image = known(row.url)
        VehicleImage.objects.filter(id=row.id).update(image=image, status=VehicleImage.Status.DONE)
    return rescrape(advertiser, vehicles, django_capture_on_commit_callbacks)


def test_a_chunk_of_200_unchanged_urls_costs_a_bounded_number_of_statements(
    rechecked_sitemap, answers_304, django_assert_max_num_queries
):
    scrape, _ids = rechecked_sitemap
    chunk, last = classify_run.scrape_chunks(scrape_id=scrape.id)  # the run starts; chunks of 200
    assert (len(chunk), len(last)) == (200, 4)  # the first one is measured (the last also closes the run)
    # The scrape, its rows, their sources; then in one transaction (its savepoint and release here, BEGIN and
    # COMMIT in production) one UPDATE of the sources, the rows and the run counted, URL fixes looked up; the
    # run's completion checked. No row is read twice, and no row's URL changed, so none is compared for
    # carry-over.
    with django_assert_max_num_queries(10):
        fetched = classify_run.scrape_chunk_fetch(scrape_id=scrape.id, vehicle_image_ids=chunk)
    assert (fetched.retry, fetched.to_classify) == ([], [])
    assert len(answers_304) == 200 and all(etag == ETAG for _url, etag, _lm in answers_304)
    scrape.refresh_from_db()
    assert (scrape.status, scrape.done, scrape.from_cache, scrape.failed) == ("running", 200, 200, 0)
    assert ImageSource.objects.filter(last_status=304, check_count=1).count() == 200
    assert VehicleImage.objects.filter(id__in=chunk, status="done").count() == 200


def test_a_url_fix_made_before_the_picture_was_known_follows_it_on_a_recheck(
    advertiser, reviewer, answers_304, django_capture_on_commit_callbacks
):
    scrape, (row_id,) = rescrape(advertiser, [1], django_capture_on_commit_callbacks)
    row = VehicleImage.objects.get(id=row_id)
    (url_fix,) = fixes_apply(user=reviewer, advertiser=advertiser, changes=[FixChange(row.id, "image_type", "Stock")])
    assert url_fix.image_id is None  # the row had no picture: the fix is keyed by its URL
    image = known(row.url)  # meanwhile another run stored the URL's picture
    predict(image, image_type="Dealer", color="Red")

    classify_run.scrape_chunk_fetch(scrape_id=scrape.id, vehicle_image_ids=[row.id])

    followed = ManualFix.objects.get(carried_from=url_fix)
    assert (followed.image_id, followed.new_value) == (image.id, "Stock")
    assert VehicleImage.objects.get(id=row.id).image_id == image.id


def test_a_near_duplicate_under_a_changed_url_gets_the_fix_carried_over_by_the_chunk(
    advertiser, reviewer, answers_304, django_capture_on_commit_callbacks
):
    scrape, (first, second) = rescrape(advertiser, [2], django_capture_on_commit_callbacks)
    fixed_picture = known(
        "https://cdn.example.com/0/0.jpg", ImageFactory(phash=0x0F0F_1234, classified_at=timezone.now())
    )
    predict(fixed_picture, image_type="Dealer", color="Red")
    VehicleImage.objects.filter(id=first).update(image=fixed_picture)
    fixes_apply(user=reviewer, advertiser=advertiser, changes=[FixChange(first, "image_type", "Stock")])
    # The second picture's URL changed (ingest marks it) and it is a re-encoded copy of the fixed one.
    twin = known(
        "https://cdn.example.com/0/1.jpg", ImageFactory(phash=0x0F0F_1234 ^ 0b101, classified_at=timezone.now())
    )
    predict(twin, image_type="Dealer", color="Red")
    VehicleImage.objects.filter(id=second).update(url_changed=True)

    classify_run.scrape_chunk_fetch(scrape_id=scrape.id, vehicle_image_ids=[first, second])

    carried = ManualFix.objects.get(image=twin)
    assert (carried.new_value, carried.carried_from.image_id) == ("Stock", fixed_picture.id)
    assert not VehicleImage.objects.get(id=second).url_changed  # checked once
    assert ManualFix.objects.filter(image=fixed_picture).count() == 1  # the unchanged row carried nothing
