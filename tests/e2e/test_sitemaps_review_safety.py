"""Browser (Playwright, Debian's Chromium, 360 px and 1280 px): saving on the review page cannot lose work, a
global fix shows its impact and its scope, disagreements are flagged, any picture can be fixed, keyboard and
bulk edit, and no page scrolls sideways on a phone. Screenshots of a realistic page go to var/screenshots/."""

import io
from pathlib import Path

import pytest

from core.roles import Role

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
COLOURS = {"Red": (190, 30, 40), "Blue": (30, 70, 170), "White": (235, 235, 235), "Grey": (120, 120, 125)}


def _thumbnail(image, colour: str, kind: str) -> None:
    """A small JPEG thumbnail so the page looks like the real one (a car-ish block on a background)."""
    from django.core.files.base import ContentFile
    from PIL import Image as PILImage
    from PIL import ImageDraw

    canvas = PILImage.new("RGB", (320, 240), (250, 250, 250) if kind == "Stock" else (110, 140, 90))
    draw = ImageDraw.Draw(canvas)
    if kind == "Placeholder":
        draw.text((110, 110), "PHOTO SOON", fill=(40, 40, 40))
    else:
        draw.rounded_rectangle((50, 100, 270, 180), radius=25, fill=COLOURS.get(colour, (0, 0, 0)))
        draw.ellipse((75, 160, 115, 200), fill=(20, 20, 20))
        draw.ellipse((205, 160, 245, 200), fill=(20, 20, 20))
    data = io.BytesIO()
    canvas.save(data, "JPEG", quality=70)
    image.thumbnail.save(f"{image.sha256[:16]}.jpg", ContentFile(data.getvalue()), save=True)


@pytest.fixture
def inventory(role_groups, make_user, monkeypatch):
    """25+ vehicles x 4 pictures of one advertiser, the first picture shared with a second advertiser."""
    from tests.sitemaps.factories import AdvertiserFactory, VehicleFactory, VehicleImageFactory, predict

    monkeypatch.setattr("sitemaps.tasks.fix_deliver.delay", lambda outbox_id: None)
    make_user("rev", Role.REVIEWER)
    acme = AdvertiserFactory(slug="acme", name="Acme Cars")
    rival = AdvertiserFactory(slug="rival", name="Rival Motors")
    kinds = [("Dealer", "Red"), ("Dealer", "Blue"), ("Stock", "White"), ("Placeholder", "")]
    rows = []
    for n in range(26):
        vehicle = VehicleFactory(advertiser=acme, external_id=f"AC-{n:03d}", title=f"Golf 1.{n % 5} TSI estate")
        for position, (kind, colour) in enumerate(kinds):
            vi = VehicleImageFactory(
                vehicle=vehicle, position=position, url=f"https://cdn.example.com/{n}/{position}.jpg"
            )
            predict(vi.image, image_type=kind, color=colour)
            _thumbnail(vi.image, colour, kind)
            rows.append(vi)
    shared = rows[0]
    VehicleImageFactory(vehicle=VehicleFactory(advertiser=rival, external_id="RV-1"), position=0, image=shared.image)
    return acme, rows


def _bar_visible(page) -> bool:
    return page.evaluate(
        """() => { const r = document.getElementById('action-bar').getBoundingClientRect();
                   return r.top >= 0 && r.bottom <= window.innerHeight + 1 && r.height > 0; }"""
    )


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["360px", "1280px"])
def test_action_bar_is_visible_at_any_scroll_position_and_counts_changed_rows(
    live_server, browser, login, inventory, viewport
):
    from playwright.sync_api import expect

    acme, rows = inventory
    page = browser.new_page(viewport=viewport)
    try:
        login(page, "rev", "pw-rev")
        page.goto(f"{live_server.url}/sitemaps/{acme.slug}/")
        for y in (0, 3000, 9000, 10**6):
            page.evaluate(f"window.scrollTo(0, {y})")
            assert _bar_visible(page), f"action bar hidden at scroll {y}"
        page.select_option(f'select[name="type-{rows[5].id}"]', "Stock")
        page.select_option(f'select[name="color-{rows[9].id}"]', "Green")
        expect(page.locator("#pending")).to_have_text("2 pending changes")
        expect(page.locator("tr.image-row.changed")).to_have_count(2)
        expect(page.locator(f'tr[data-vehicle-image="{rows[5].id}"]')).to_have_class("image-row changed")
    finally:
        page.close()


def test_leaving_with_changes_asks_first_and_saving_keeps_filters_and_scroll(live_server, browser, login, inventory):
    from playwright.sync_api import expect

    from sitemaps.models import ManualFix

    acme, rows = inventory
    page = browser.new_page(viewport=DESKTOP)
    try:
        login(page, "rev", "pw-rev")
        page.goto(f"{live_server.url}/sitemaps/{acme.slug}/?type=Dealer")
        target = rows[40]  # a Dealer picture further down
        page.locator(f'select[name="type-{target.id}"]').scroll_into_view_if_needed()
        page.select_option(f'select[name="type-{target.id}"]', "Stock")
        asked = []

        def answer(dialog):
            asked.append(dialog.type)
            dialog.dismiss()  # stay

        page.on("dialog", answer)
        page.click("text=History")
        page.wait_for_timeout(500)
        assert asked == ["beforeunload"]
        assert "/history/" not in page.url
        page.remove_listener("dialog", answer)

        before = page.evaluate("window.scrollY")
        page.click("#update")
        expect(page.locator(".message")).to_contain_text("Saved 1 change")
        assert page.url.endswith("?type=Dealer")
        assert abs(page.evaluate("window.scrollY") - before) < 50
        page.click("#update")  # nothing pending: nothing sent twice
        assert ManualFix.objects.filter(vehicle_image=target).count() == 1
    finally:
        page.close()


@pytest.mark.parametrize("lost", ["session expired", "all cookies cleared"])
def test_a_session_that_expires_before_update_keeps_the_edits_and_saves_them_after_login(
    live_server, browser, login, inventory, lost
):
    from django.contrib.sessions.models import Session
    from django.db import connection
    from playwright.sync_api import expect

    from sitemaps.models import ManualFix

    acme, _rows = inventory
    page = browser.new_page(viewport=PHONE)
    try:
        login(page, "rev", "pw-rev")
        page.goto(f"{live_server.url}/sitemaps/{acme.slug}/?page=2")
        on_page = page.locator("select[name^=type-]").first.get_attribute("name")
        vi_id = int(on_page.split("-")[1])
        page.select_option(f'select[name="type-{vi_id}"]', "Stock")
        page.select_option(f'select[name="color-{vi_id}"]', "Yellow")
        if lost == "session expired":
            Session.objects.all().delete()  # while the reviewer was working
            connection.close()
        else:
            page.context.clear_cookies()  # no session and no CSRF cookie: Django answers its CSRF page
        page.click("#update")
        page.wait_for_url("**/accounts/login/**")
        page.fill("#id_username", "rev")
        page.fill("#id_password", "pw-rev")
        page.click("button[type=submit]")
        expect(page.locator(".message")).to_contain_text("Saved 2 changes", timeout=10_000)
        assert "page=2" in page.url
        assert sorted(ManualFix.objects.filter(vehicle_image_id=vi_id).values_list("new_value", flat=True)) == [
            "Stock",
            "Yellow",
        ]
        page.reload()
        expect(page.locator(".message")).to_have_count(0)
        assert ManualFix.objects.count() == 2  # kept edits are sent once
    finally:
        page.close()


def test_a_global_fix_shows_its_impact_and_the_chosen_scope_lands_in_history(live_server, browser, login, inventory):
    from playwright.sync_api import expect

    from sitemaps.models import ManualFix

    acme, rows = inventory
    shared = rows[0]
    page = browser.new_page(viewport=DESKTOP)
    try:
        login(page, "rev", "pw-rev")
        page.goto(f"{live_server.url}/sitemaps/{acme.slug}/")
        row = page.locator(f'tr[data-vehicle-image="{shared.id}"]')
        expect(row.locator(".impact")).to_contain_text("This picture is on 2 vehicles of 2 advertisers")
        row.locator(f'select[name="scope-{shared.id}"]').select_option("advertiser")
        page.select_option(f'select[name="type-{shared.id}"]', "Stock")
        page.click("#update")
        expect(page.locator(".message")).to_contain_text("Saved 1 change")
        fix = ManualFix.objects.get()
        assert (fix.scope, fix.new_value, fix.user.username) == ("advertiser", "Stock", "rev")
        page.click("text=History")
        expect(page.locator("tr.history-row .scope")).to_have_text("This advertiser only")
    finally:
        page.close()


def test_staff_vs_advertiser_disagreement_is_flagged_counted_and_filtered(
    live_server, browser, login, inventory, make_user
):
    from playwright.sync_api import expect

    from sitemaps.fixes import FixChange, fixes_apply

    acme, rows = inventory
    member = make_user("acme-user", Role.ADVERTISER)
    acme.members.add(member)
    picture = rows[6]
    fixes_apply(user=member, advertiser=acme, changes=[FixChange(picture.id, "image_type", "Dealer")])
    from django.contrib.auth.models import User

    fixes_apply(
        user=User.objects.get(username="rev"), advertiser=acme, changes=[FixChange(picture.id, "image_type", "Stock")]
    )
    page = browser.new_page(viewport=PHONE)
    try:
        login(page, "rev", "pw-rev")
        page.goto(f"{live_server.url}/sitemaps/")
        expect(page.locator("a.disagreements")).to_have_text("1")
        page.click("a.disagreements")
        expect(page.locator("tr.image-row")).to_have_count(1)
        flags = page.locator(f'tr[data-vehicle-image="{picture.id}"] .disagreement')
        expect(flags.filter(has_text="staff fixed type as Stock; acme as Dealer")).to_have_count(1)
        # The classifier was 90 % sure of Stock: the advertiser's Dealer disagrees with it too.
        expect(flags.filter(has_text="the classifier is 90% sure of Stock")).to_have_count(1)
    finally:
        page.close()


def test_a_never_downloaded_picture_is_fixed_and_the_fix_follows_it_once_downloaded(
    live_server, browser, login, inventory
):
    from django.db import connection
    from playwright.sync_api import expect

    from classification.models import GroundTruth
    from sitemaps.fix_write import url_fixes_follow
    from sitemaps.models import ManualFix, VehicleImage
    from tests.sitemaps.factories import ImageFactory, predict

    acme, rows = inventory
    refused = rows[2]
    VehicleImage.objects.filter(id=refused.id).update(image=None, status="failed", error="http_403")
    page = browser.new_page(viewport=DESKTOP)
    try:
        login(page, "rev", "pw-rev")
        page.goto(f"{live_server.url}/sitemaps/{acme.slug}/")
        row = page.locator(f'tr[data-vehicle-image="{refused.id}"]')
        expect(row).to_contain_text("not downloaded: http_403")
        page.select_option(f'select[name="type-{refused.id}"]', "Dealer")
        page.click("#update")
        expect(page.locator(".message")).to_contain_text("Saved 1 change")
        expect(row.locator(".marks")).to_contain_text("fixed before the picture was downloaded")
        url_fix = ManualFix.objects.get()
        assert (url_fix.image_id, url_fix.url, url_fix.new_value) == (None, refused.url, "Dealer")

        # The CDN answers again: the chunk downloads the picture and the fix follows it.
        image = ImageFactory()
        predict(image, image_type="Stock", color="White")
        VehicleImage.objects.filter(id=refused.id).update(image=image, status="done", error="")
        assert url_fixes_follow(vehicle_image_ids=[refused.id]) == 1
        assert url_fixes_follow(vehicle_image_ids=[refused.id]) == 0  # once
        connection.close()
        page.reload()
        expect(row.locator("select[name^=type-]")).to_have_value("Dealer")
        expect(row.locator(".marks")).to_contain_text("by rev")
        assert GroundTruth.objects.get(image=image, source="staff_fix").value == "Dealer"
        page.click("text=History")
        expect(page.locator("tr.history-row")).to_have_count(2)
    finally:
        page.close()


def test_keyboard_and_bulk_edit_change_exactly_the_selected_pictures(live_server, browser, login, inventory):
    from playwright.sync_api import expect

    from sitemaps.models import ManualFix

    acme, rows = inventory
    page = browser.new_page(viewport=DESKTOP)
    try:
        login(page, "rev", "pw-rev")
        page.goto(f"{live_server.url}/sitemaps/{acme.slug}/")
        page.locator(f'tr[data-vehicle-image="{rows[0].id}"] td.pos').click()
        page.keyboard.press("j")  # rows[1]: Dealer, Blue
        page.keyboard.press("s")  # -> Stock
        page.keyboard.press("Shift+R")  # -> Red
        page.keyboard.press("j")
        page.keyboard.press("j")  # rows[3]
        page.keyboard.press("x")  # selected
        page.locator(f'tr[data-vehicle-image="{rows[8].id}"] .pick-box').check()
        expect(page.locator("#selected-count")).to_have_text("2 selected")
        page.select_option("#bulk-color", "Purple")
        expect(page.locator("#pending")).to_have_text("4 pending changes")
        page.keyboard.press("Control+Enter")
        expect(page.locator(".message")).to_contain_text("Saved 4 changes")
        assert sorted(ManualFix.objects.values_list("vehicle_image_id", "attribute", "new_value")) == sorted(
            [
                (rows[1].id, "image_type", "Stock"),
                (rows[1].id, "color", "Red"),
                (rows[3].id, "color", "Purple"),
                (rows[8].id, "color", "Purple"),
            ]
        )
        page.locator(f'tr[data-vehicle-image="{rows[0].id}"] button.zoom').click()
        expect(page.locator("#zoom")).to_be_visible()
        assert page.locator("#zoom-url").get_attribute("href") == rows[0].url
    finally:
        page.close()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["360px", "1280px"])
def test_a_realistic_review_page_shows_fixes_flags_impact_and_changes_without_sideways_scroll(
    live_server, browser, login, inventory, make_user, viewport
):
    """Also writes the screenshots looked at by a person: var/screenshots/review-<width>-*.png."""
    from django.contrib.auth.models import User
    from django.db import connection
    from playwright.sync_api import expect

    from sitemaps.fixes import FixChange, fixes_apply
    from sitemaps.models import VehicleImage

    acme, rows = inventory
    member = make_user("acme-user", Role.ADVERTISER)
    acme.members.add(member)
    reviewer = User.objects.get(username="rev")
    fixes_apply(user=reviewer, advertiser=acme, changes=[FixChange(rows[2].id, "image_type", "Dealer")])
    fixes_apply(user=member, advertiser=acme, changes=[FixChange(rows[4].id, "color", "Grey")])
    fixes_apply(user=reviewer, advertiser=acme, changes=[FixChange(rows[4].id, "color", "Black")])
    VehicleImage.objects.filter(id=rows[7].id).update(image=None, status="failed", error="http_403")
    connection.close()
    page = browser.new_page(viewport=viewport)
    try:
        login(page, "rev", "pw-rev")
        page.goto(f"{live_server.url}/sitemaps/{acme.slug}/")
        page.select_option(f'select[name="type-{rows[1].id}"]', "Stock")
        expect(page.locator("tr.image-row.changed")).to_have_count(1)
        expect(page.locator("tr.image-row.disagrees")).to_have_count(2)  # staff vs advertiser; fix vs classifier
        expect(page.locator(".impact")).to_have_count(1)
        page.evaluate("document.documentElement.style.overflowX = 'visible'; document.body.style.overflowX = 'visible'")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.screenshot(path=str(SHOTS / f"review-{viewport['width']}-top.png"))
        page.locator(f'tr[data-vehicle-image="{rows[4].id}"]').scroll_into_view_if_needed()
        page.evaluate("window.scrollBy(0, 150)")
        assert _bar_visible(page)
        page.screenshot(path=str(SHOTS / f"review-{viewport['width']}-fixed.png"))
    finally:
        page.close()


CONTROLS = """() => {
  const bad = [];
  // A checkbox or radio button is tapped through its label: the label is measured.
  const controls = 'button, select, a.button, input:not([type=hidden]):not([type=checkbox]):not([type=radio]), '
    + 'label:has(> input[type=checkbox]), label:has(> input[type=radio]), label.tap, .nav a';
  for (const el of document.querySelectorAll(controls)) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || el.closest('dialog:not([open])') || el.closest('[hidden]')) continue;
    if (r.height < 44) bad.push(el.outerHTML.slice(0, 80) + ' ' + r.height);
  }
  return bad;
}"""


def test_at_360px_no_page_scrolls_sideways_and_every_control_is_44px_tall(
    live_server, browser, login, inventory, make_user
):
    from django.db import connection

    from sitemaps.fixes import FixChange, fixes_apply

    acme, rows = inventory
    boss = make_user("boss", Role.ADMIN)
    fixes_apply(user=boss, advertiser=acme, changes=[FixChange(rows[1].id, "image_type", "Stock")])
    fixes_apply(user=boss, advertiser=acme, changes=[FixChange(rows[5].id, "color", "Burgundy", scope="advertiser")])
    connection.close()
    page = browser.new_page(viewport=PHONE)
    try:
        login(page, "boss", "pw-boss")
        for name, path in (
            ("review", f"/sitemaps/{acme.slug}/"),
            ("list", "/sitemaps/"),
            ("history", f"/sitemaps/{acme.slug}/history/"),
            ("models", "/models/"),
            ("datasets", "/datasets/"),
        ):
            page.goto(live_server.url + path)
            # overflow-x: clip on html/body would hide an overflow from scrollWidth: measure without it.
            page.evaluate(
                "document.documentElement.style.overflowX = 'visible'; document.body.style.overflowX = 'visible'"
            )
            width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert width[0] <= width[1], f"{name}: {width[0]} px wide in a {width[1]} px window"
            assert page.evaluate(CONTROLS) == [], name
            if name in ("list", "history"):
                page.screenshot(path=str(SHOTS / f"{name}-360.png"), full_page=True)
    finally:
        page.close()


@pytest.fixture(autouse=True, scope="module")
def _shots_dir():
    SHOTS.mkdir(parents=True, exist_ok=True)


@pytest.fixture
def role_groups(db):
    from django.contrib.auth.models import Group

    for role in Role.values:
        Group.objects.get_or_create(name=role)
