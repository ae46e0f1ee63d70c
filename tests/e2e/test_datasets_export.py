"""Browser: an admin requests an export on /datasets/, watches it finish, sees the bars and downloads the zip."""

import hashlib
import io
import zipfile

import pytest
from django.core.files.base import ContentFile
from PIL import Image as PILImage

from classification.models import GroundTruth, Image

pytestmark = [pytest.mark.e2e]


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
def test_admin_exports_a_dataset_and_downloads_the_zip_on_a_phone(browser, live_server, login, admin_user, tmp_path):
    _pictures(6)
    page = browser.new_page(viewport={"width": 390, "height": 844}, accept_downloads=True)
    try:
        login(page, "boss", "pw-boss")
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
        page.close()
    names = zipfile.ZipFile(target).namelist()
    assert "manifest.csv" in names and sum(n.endswith(".jpg") for n in names) == 6
