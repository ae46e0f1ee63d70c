"""Browser: an admin requests an export on /datasets/, watches it finish, sees the bars and downloads the zip."""

import hashlib
import io
import os
import zipfile

import pytest
from django.core.files.base import ContentFile
from PIL import Image as PILImage

from classification.models import GroundTruth, Image

CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's Chromium at /usr/bin/chromium"),
]


def _pictures(n: int) -> None:
    for i in range(n):
        buf = io.BytesIO()
        PILImage.new("RGB", (40, 30), (i * 40 % 256, 80, 120)).save(buf, "JPEG")
        sha = hashlib.sha256(f"e2e-{i}".encode()).hexdigest()
        image = Image(sha256=sha, width=800, height=600, format="JPEG")
        image.thumbnail.save(f"{sha}.jpg", ContentFile(buf.getvalue()), save=False)
        image.save()
        GroundTruth.objects.create(
            image=image, attribute="image_type", value=["Dealer", "Stock"][i % 2], source="consensus"
        )


@pytest.mark.django_db(transaction=True)
def test_admin_exports_a_dataset_and_downloads_the_zip_on_a_phone(
    live_server, django_user_model, tmp_path, monkeypatch
):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread. Set for this test only: set at import time
    # it would leak into every later subprocess (and fail `check --deploy`).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # A superuser holds every role; not the admin_user fixture, whose groups a transactional flush removes.
    django_user_model.objects.create_superuser("boss", password="pw-boss")
    _pictures(6)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844}, accept_downloads=True)
            page.goto(f"{live_server.url}/accounts/login/")
            page.fill('input[name="username"]', "boss")
            page.fill('input[name="password"]', "pw-boss")
            page.click('button[type="submit"]')
            page.goto(f"{live_server.url}/datasets/")
            page.click("summary")
            page.select_option('select[name="attribute"]', "image_type")
            page.fill('input[name="test_fraction"]', "0.5")
            page.click('form button.primary:has-text("Export")')
            page.wait_for_selector("text=Download zip", timeout=15_000)

            assert page.locator(".bar.train").count() >= 1
            assert page.locator(".badge.ok").first.inner_text() == "done"
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

            with page.expect_download() as info:
                page.click("text=Download zip")
            target = tmp_path / "dataset.zip"
            info.value.save_as(target)
        finally:
            browser.close()
    names = zipfile.ZipFile(target).namelist()
    assert "manifest.csv" in names and sum(n.endswith(".jpg") for n in names) == 6
