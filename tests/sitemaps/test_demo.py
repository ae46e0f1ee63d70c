"""The demo: Demo Motors with ~30 vehicles of served pictures, a few pictures known at once with fixes by the
demo reviewer and advertiser user and their history; seeding twice changes nothing."""

import io

import pytest
from django.core.management import call_command

from sitemaps.models import Advertiser, ManualFix, Scrape, Vehicle, VehicleImage


@pytest.mark.django_db
def test_demo_seed_creates_a_sitemap_with_fixes_and_history_and_is_idempotent(client, settings):
    settings.SPOTCHECK_DEMO_BASE_URL = "http://127.0.0.1:8000"
    call_command("demo_seed", "--force", stdout=io.StringIO())
    advertiser = Advertiser.objects.get(slug="demo-motors")
    assert advertiser.members.filter(username="advertiser").exists()
    assert 25 <= Vehicle.objects.filter(advertiser=advertiser).count() <= 35
    per_vehicle = [v.images.count() for v in Vehicle.objects.filter(advertiser=advertiser)]
    assert min(per_vehicle) >= 3 and max(per_vehicle) <= 6
    assert VehicleImage.objects.filter(url__startswith="http://127.0.0.1:8000/sitemaps/demo-pictures/").exists()
    assert VehicleImage.objects.filter(image__isnull=False).count() >= 3
    fixes = ManualFix.objects.filter(advertiser=advertiser)
    assert {f.user.username for f in fixes} == {"reviewer", "advertiser"}
    assert set(fixes.values_list("scope", flat=True)) == {"staff", "advertiser"}

    call_command("demo_seed", "--force", stdout=io.StringIO())
    assert Scrape.objects.filter(advertiser=advertiser).count() == 1
    assert ManualFix.objects.count() == fixes.count() == 3

    client.login(username="advertiser", password="spotcheck-demo")
    assert client.get("/sitemaps/demo-motors/").status_code == 200
    history = client.get("/sitemaps/demo-motors/history/").content.decode()
    assert history.count('class="history-row"') == 3
