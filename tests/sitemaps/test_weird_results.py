"""Seed 002's weird results, flagged on the review page and the advertiser list: an advertiser's Placeholder
fix with a colour, one picture fixed differently by two advertisers, and fixes that did not stick when the
picture came back under a new URL (carried over automatically, and shown)."""

import pytest

from classification.models import GroundTruth
from sitemaps.classify_run import fixes_carry_over
from sitemaps.fixes import FixChange, fixes_apply
from sitemaps.models import ManualFix, VehicleImage
from tests.sitemaps.factories import ImageFactory, VehicleFactory, VehicleImageFactory, predict

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _quiet_tasks(monkeypatch):
    monkeypatch.setattr("sitemaps.tasks.fix_deliver.delay", lambda outbox_id: None)


def test_advertiser_placeholder_fix_with_a_colour_is_flagged(client, reviewer, member, advertiser, make_picture):
    vi = make_picture(advertiser=advertiser, image_type="Dealer", color="Red")
    fixes_apply(user=member, advertiser=advertiser, changes=[FixChange(vi.id, "image_type", "Placeholder")])
    client.force_login(reviewer)
    assert "advertiser Placeholder fix with a colour" in client.get(f"/sitemaps/{advertiser.slug}/").content.decode()
    assert "1 Placeholder fixes with a colour" in client.get("/sitemaps/").content.decode()


def test_a_picture_fixed_differently_by_two_advertisers_is_flagged(
    client, reviewer, member, rival_member, advertiser, other_advertiser, make_picture
):
    mine = make_picture(advertiser=advertiser, image_type="Dealer", color="Red")
    theirs = VehicleImageFactory(vehicle=VehicleFactory(advertiser=other_advertiser), image=mine.image)
    fixes_apply(user=member, advertiser=advertiser, changes=[FixChange(mine.id, "image_type", "Stock")])
    fixes_apply(
        user=rival_member, advertiser=other_advertiser, changes=[FixChange(theirs.id, "image_type", "Placeholder")]
    )
    client.force_login(reviewer)
    page = client.get(f"/sitemaps/{advertiser.slug}/").content.decode()
    assert "rival fixed the same picture&#x27;s image_type as Placeholder" in page
    listing = client.get("/sitemaps/").content.decode()
    assert listing.count("1 pictures fixed differently by another advertiser") == 2


def test_the_same_fix_twice_by_two_advertisers_is_not_a_conflict(
    client, reviewer, member, rival_member, advertiser, other_advertiser, make_picture
):
    mine = make_picture(advertiser=advertiser, image_type="Dealer", color="Red")
    theirs = VehicleImageFactory(vehicle=VehicleFactory(advertiser=other_advertiser), image=mine.image)
    fixes_apply(user=member, advertiser=advertiser, changes=[FixChange(mine.id, "image_type", "Stock")])
    fixes_apply(user=rival_member, advertiser=other_advertiser, changes=[FixChange(theirs.id, "image_type", "Stock")])
    client.force_login(reviewer)
    assert "fixed differently" not in client.get("/sitemaps/").content.decode()


def test_same_bytes_under_a_new_url_keep_the_fix_and_show_where_it_was_made(client, reviewer, advertiser, make_picture):
    vi = make_picture(advertiser=advertiser, image_type="Dealer", color="Red", url="https://old.example.com/a.jpg")
    fixes_apply(user=reviewer, advertiser=advertiser, changes=[FixChange(vi.id, "image_type", "Stock")])
    VehicleImage.objects.filter(id=vi.id).update(url="https://new.example.com/a.jpg")  # the CDN moved it
    client.force_login(reviewer)
    html = client.get(f"/sitemaps/{advertiser.slug}/").content.decode()
    assert "followed the picture" in html and 'href="https://old.example.com/a.jpg"' in html


def test_a_near_duplicate_under_a_new_url_gets_the_fix_carried_over(client, reviewer, member, advertiser, make_picture):
    old = make_picture(
        advertiser=advertiser, image_type="Dealer", color="Red", url="https://old.example.com/a.jpg",
        image=ImageFactory(phash=0x0F0F_1234_5678_9ABC),
    )  # fmt: skip
    fixes_apply(user=member, advertiser=advertiser, changes=[FixChange(old.id, "image_type", "Stock")])
    original = ManualFix.objects.get()
    # The CDN re-encoded the picture and moved it: new bytes, new URL, a perceptual hash 3 bits away.
    new_image = ImageFactory(phash=0x0F0F_1234_5678_9ABC ^ 0b10101)
    predict(new_image, image_type="Dealer", color="Red")
    VehicleImage.objects.filter(id=old.id).update(
        url="https://new.example.com/a-1200.jpg", image=new_image, url_changed=True
    )
    assert fixes_carry_over(vehicle_image_ids=[old.id]) == 1
    carried = ManualFix.objects.exclude(id=original.id).get()
    assert (carried.image_id, carried.new_value, carried.carried_from_id, carried.user) == (
        new_image.id, "Stock", original.id, None,
    )  # fmt: skip
    assert carried.scope == "advertiser"
    gt = GroundTruth.objects.get(id=carried.ground_truth_id)
    assert (gt.source, gt.advertiser, gt.reference) == ("advertiser_fix", "acme", f"sitemaps.manual_fix:{original.id}")
    client.force_login(reviewer)
    html = client.get(f"/sitemaps/{advertiser.slug}/").content.decode()
    assert "carried over" in html and 'href="https://old.example.com/a.jpg"' in html
    assert "1 fixes carried over to new URLs" in client.get("/sitemaps/").content.decode()
    # Checked once: running again carries nothing more.
    assert fixes_carry_over(vehicle_image_ids=[old.id]) == 0


def test_a_new_url_without_a_near_duplicate_carries_nothing(reviewer, advertiser, make_picture):
    old = make_picture(advertiser=advertiser, image_type="Dealer", color="Red", image=ImageFactory(phash=0x1234))
    fixes_apply(user=reviewer, advertiser=advertiser, changes=[FixChange(old.id, "color", "Blue")])
    # 16 bits away: a different picture
    other = make_picture(
        advertiser=advertiser, image_type="Dealer", color="Red", image=ImageFactory(phash=0x1234 ^ 0xFFFF)
    )
    VehicleImage.objects.filter(id=other.id).update(url_changed=True)
    assert fixes_carry_over(vehicle_image_ids=[other.id]) == 0
    assert ManualFix.objects.count() == 1
