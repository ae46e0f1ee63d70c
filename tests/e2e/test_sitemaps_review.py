"""Browser: a reviewer opens a sitemap, changes two dropdowns, presses Update, and sees the rows marked fixed
and the history entries (Playwright, Debian's Chromium, desktop viewport, against the live server).
The browser, its skip when Chromium is missing, and the login helper come from tests/e2e/conftest.py."""

import pytest

from core.roles import Role

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def sitemap(role_groups, make_user, monkeypatch):
    from tests.sitemaps.factories import AdvertiserFactory, VehicleFactory, VehicleImageFactory, predict

    monkeypatch.setattr("sitemaps.tasks.fix_deliver.delay", lambda outbox_id: None)
    user = make_user("rev", Role.REVIEWER)
    advertiser = AdvertiserFactory(slug="acme", name="Acme Cars")
    rows = []
    for n in range(2):
        vehicle = VehicleFactory(advertiser=advertiser, external_id=f"E2E-{n}")
        for position in range(2):
            vi = VehicleImageFactory(vehicle=vehicle, position=position)
            predict(vi.image, image_type="Dealer", color="Red")
            rows.append(vi)
    return user, advertiser, rows


def test_reviewer_fixes_two_pictures_and_sees_them_marked_and_in_history(live_server, browser, login, sitemap):
    from playwright.sync_api import expect

    _user, advertiser, rows = sitemap
    page = browser.new_page(viewport={"width": 1366, "height": 900})  # desktop
    try:
        login(page, "rev", "pw-rev")
        page.goto(f"{live_server.url}/sitemaps/{advertiser.slug}/")
        expect(page.locator("tr.image-row")).to_have_count(4)
        expect(page.locator("tr.image-row.fixed")).to_have_count(0)

        page.select_option(f'select[name="type-{rows[0].id}"]', "Stock")
        page.select_option(f'select[name="color-{rows[3].id}"]', "Blue")
        page.click("#update")

        expect(page.locator(".message")).to_contain_text("Saved 2 changes")
        fixed = page.locator("tr.image-row.fixed")
        expect(fixed).to_have_count(2)
        expect(page.locator(f'tr[data-vehicle-image="{rows[0].id}"] .marks')).to_contain_text("by rev")
        expect(page.locator(f'select[name="type-{rows[0].id}"]')).to_have_value("Stock")
        expect(page.locator(f'select[name="color-{rows[3].id}"]')).to_have_value("Blue")

        page.click("text=History")
        history = page.locator("tr.history-row")
        expect(history).to_have_count(2)
        expect(page.locator("table.history")).to_contain_text("Dealer → Stock")
        expect(page.locator("table.history")).to_contain_text("Red → Blue")
    finally:
        page.close()


@pytest.fixture
def role_groups(db):
    from django.contrib.auth.models import Group

    for role in Role.values:
        Group.objects.get_or_create(name=role)


def test_progress_bar_follows_the_scrape_and_the_page_reloads_when_done(live_server, browser, login, sitemap):
    from playwright.sync_api import expect

    from sitemaps.models import Scrape

    _user, advertiser, _rows = sitemap
    scrape = Scrape.objects.create(advertiser=advertiser, status="running", total=10, done=2)

    def advance(**fields):
        # ORM calls inside Playwright's event loop get a connection of their own: close it, or it outlives the
        # test and the test database cannot be dropped.
        from django.db import connection

        Scrape.objects.filter(id=scrape.id).update(**fields)
        connection.close()

    page = browser.new_page(viewport={"width": 1366, "height": 900})
    try:
        login(page, "rev", "pw-rev")
        page.goto(f"{live_server.url}/sitemaps/{advertiser.slug}/")
        expect(page.locator('[role="progressbar"]')).to_have_attribute("aria-valuenow", "20")
        advance(done=7)
        expect(page.locator('#scrape-status [data-field="done"]')).to_have_text("7", timeout=10_000)
        expect(page.locator('[role="progressbar"]')).to_have_attribute("aria-valuenow", "70")
        advance(done=10, status="done")
        expect(page.locator('[role="progressbar"]')).to_have_count(0, timeout=10_000)  # reloaded, finished
        expect(page.locator('#scrape-status [data-field="status"]')).to_have_text("done")
    finally:
        page.close()
