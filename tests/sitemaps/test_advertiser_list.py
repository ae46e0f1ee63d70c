"""The advertiser list: per-advertiser health (last scrape, % ML failures, % fixed) in a number of queries that
does not grow with the number of advertisers."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from sitemaps.fixes import FixChange, fixes_apply
from sitemaps.models import Scrape
from tests.sitemaps.factories import AdvertiserFactory, VehicleFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _quiet_tasks(monkeypatch):
    monkeypatch.setattr("sitemaps.tasks.fix_deliver.delay", lambda outbox_id: None)


def test_health_shows_last_scrape_failure_and_fixed_shares(client, reviewer, advertiser, make_picture):
    vehicle = VehicleFactory(advertiser=advertiser)
    pictures = [make_picture(vehicle, image_type=t, color="Red") for t in ("Dealer", "Dealer", "Stock", "")]
    fixes_apply(user=reviewer, advertiser=advertiser, changes=[FixChange(pictures[0].id, "color", "Blue")])
    Scrape.objects.create(advertiser=advertiser, status="done", total=4, done=4)
    client.force_login(reviewer)
    html = client.get("/sitemaps/").content.decode()
    row = re.search(r'<a href="/sitemaps/acme/">.*?</tr>', html, re.S).group(0)
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    assert cells[1] == "4"  # pictures
    assert cells[2] == "25.0 %"  # ML failures: the one the classifier gave nothing
    assert cells[3] == "25.0 %"  # fixed
    assert '<span class="badge ok">done</span>' in row


def test_advertiser_list_query_count_does_not_grow_with_advertisers(client, reviewer, make_picture):
    def queries() -> int:
        client.force_login(reviewer)
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/sitemaps/").status_code == 200
        return len(captured)

    def add(slug: str) -> None:
        advertiser = AdvertiserFactory(slug=slug)
        make_picture(VehicleFactory(advertiser=advertiser), image_type="Dealer", color="Red")
        Scrape.objects.create(advertiser=advertiser, status="done", total=1, done=1)

    add("one")
    few = queries()
    for n in range(8):
        add(f"more-{n}")
    assert queries() == few
    assert few <= 15
