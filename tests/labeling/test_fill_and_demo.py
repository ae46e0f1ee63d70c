"""Filling campaigns (query, random, zip of pictures) and the demo seed."""

import io
import zipfile

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from classification import sampling
from classification.models import ModelVersion, Prediction
from classification.synthetic import picture_bytes
from labeling.fill import FillError, campaign_fill_query, campaign_fill_random, campaign_fill_zip
from labeling.models import Item
from tests.labeling.conftest import CampaignFactory, ImageFactory


@pytest.fixture
def predicted(db):
    version = ModelVersion.objects.create(name="test-v1")
    images = ImageFactory.create_batch(6)
    rows = [("Stock", 0.9), ("Stock", 0.4), ("Dealer", 0.95), ("Dealer", 0.3), ("", None), ("Placeholder", 0.8)]
    for image, (value, score) in zip(images, rows, strict=True):
        Prediction.objects.create(image=image, attribute="image_type", value=value, score=score, model_version=version)
    return images


@pytest.mark.django_db
def test_sampling_selects_by_classifier_value_and_score(predicted):
    ids = [i.pk for i in predicted]
    assert sampling.images_matching(attribute="image_type", value="Stock") == ids[0:2]
    assert sampling.images_matching(attribute="image_type", score_below=0.5) == [ids[1], ids[3]]
    assert sampling.images_matching(attribute="image_type", value="Dealer", score_below=0.5) == [ids[3]]
    assert sampling.images_matching(attribute="image_type", value="") == [ids[4]]
    with pytest.raises(ValueError):
        sampling.images_matching(attribute="image_type")
    a = sampling.images_matching(attribute="image_type", score_below=1.0, limit=3, seed=4)
    assert a == sampling.images_matching(attribute="image_type", score_below=1.0, limit=3, seed=4)
    assert len(a) == 3


@pytest.mark.django_db
def test_random_sample_is_reproducible_and_skips_excluded(predicted):
    ids = {i.pk for i in predicted}
    first = sampling.images_random(limit=4, seed=9)
    assert first == sampling.images_random(limit=4, seed=9) and set(first) <= ids
    assert not set(sampling.images_random(limit=6, exclude_ids=set(first))) & set(first)


@pytest.mark.django_db
def test_fill_from_a_query_adds_what_the_classifier_said_once(predicted):
    campaign = CampaignFactory()
    assert campaign_fill_query(campaign=campaign, value="Stock").added == 2
    result = campaign_fill_query(campaign=campaign, score_below=0.5)
    assert (result.added, result.already) == (1, 1)
    assert Item.objects.filter(campaign=campaign).count() == 3
    with pytest.raises(FillError):
        campaign_fill_query(campaign=campaign)


@pytest.mark.django_db
def test_fill_random_only_adds_pictures_not_yet_in_the_campaign(predicted):
    campaign = CampaignFactory()
    assert campaign_fill_random(campaign=campaign, count=4, seed=1).added == 4
    assert campaign_fill_random(campaign=campaign, count=4, seed=1).added == 2
    assert campaign_fill_random(campaign=campaign, count=4).added == 0


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buf.getvalue()


@pytest.mark.django_db
def test_zip_fill_ingests_pictures_once_and_reports_what_it_refused():
    campaign = CampaignFactory()
    a = picture_bytes(kind="stock", color="Red", width=320, height=240, seed=1)
    b = picture_bytes(kind="dealer", color="Blue", width=320, height=240, seed=2)
    data = _zip(
        {
            "cars/a.jpg": a,
            "cars/b.jpg": b,
            "cars/copy-of-a.jpg": a,  # the same picture twice: one item
            "notes.txt": b"hello",
            "cars/broken.jpg": b"not a jpeg at all",
            "__MACOSX/cars/._a.jpg": b"junk",
        }
    )
    path = default_storage.save("labeling/uploads/test.zip", ContentFile(data))
    result = campaign_fill_zip(campaign=campaign, path=path, gold_label="Stock")
    assert result.added == 2
    assert dict(result.rejected).keys() == {"notes.txt", "cars/broken.jpg"}
    assert set(Item.objects.filter(campaign=campaign).values_list("is_gold", "gold_label")) == {(True, "Stock")}
    again = campaign_fill_zip(campaign=campaign, path=path)
    assert (again.added, again.already) == (0, 2)


@pytest.mark.django_db
def test_zip_fill_refuses_too_many_files_and_non_zips(settings):
    settings.LABELING_ZIP_MAX_FILES = 2
    campaign = CampaignFactory()
    path = default_storage.save("labeling/uploads/many.zip", ContentFile(_zip({f"{n}.jpg": b"x" for n in range(3)})))
    with pytest.raises(FillError, match="at most 2"):
        campaign_fill_zip(campaign=campaign, path=path)
    bad = default_storage.save("labeling/uploads/bad.zip", ContentFile(b"plain text"))
    with pytest.raises(FillError, match="not a zip"):
        campaign_fill_zip(campaign=campaign, path=bad)


@pytest.mark.django_db
def test_zip_entry_larger_than_the_cap_is_rejected_without_decoding(settings):
    settings.SPOTCHECK_FETCH_MAX_BYTES = 1000
    campaign = CampaignFactory()
    path = default_storage.save("labeling/uploads/big.zip", ContentFile(_zip({"big.jpg": b"\xff" * 5000})))
    result = campaign_fill_zip(campaign=campaign, path=path)
    assert result.rejected == [("big.jpg", "too_large")] and result.added == 0


@pytest.mark.django_db(transaction=True)
def test_zip_upload_on_the_fill_page_is_queued_after_commit_and_ingested(client, admin_user):
    campaign = CampaignFactory()
    data = _zip({"a.jpg": picture_bytes(kind="placeholder", color="Grey", width=320, height=240, seed=3)})
    client.force_login(admin_user)
    before = (
        set(default_storage.listdir("labeling/uploads")[1]) if default_storage.exists("labeling/uploads") else set()
    )
    response = client.post(
        f"/label/{campaign.pk}/fill/",
        {"source": "zip", "upload": SimpleUploadedFile("pics.zip", data, content_type="application/zip")},
        follow=True,
    )
    assert "is queued" in response.content.decode()
    assert Item.objects.filter(campaign=campaign).count() == 1  # eager tasks in tests: ran on commit
    assert set(default_storage.listdir("labeling/uploads")[1]) == before  # the upload was deleted afterwards


@pytest.mark.django_db
def test_demo_seed_makes_an_image_type_campaign_the_labeler_can_start_at_once(make_user, api_as):
    import io as _io

    from core.roles import Role
    from labeling import demo

    labeler = make_user("labeler", Role.LABELER)
    out = _io.StringIO()
    demo.seed(users={"labeler": labeler, "admin": None}, stdout=out)
    demo.seed(users={"labeler": labeler, "admin": None}, stdout=out)  # idempotent
    campaign = demo.Campaign.objects.get(name="Demo: image type")
    assert (campaign.attribute, campaign.votes_required, campaign.active) == ("image_type", 5, True)
    assert campaign.items.filter(is_gold=False).count() >= 50
    assert campaign.items.filter(is_gold=True).count() > 0
    gold_labels = set(campaign.items.filter(is_gold=True).values_list("gold_label", flat=True))
    assert gold_labels <= {"Dealer", "Stock", "Placeholder"}
    response = api_as(labeler).post(f"/api/v1/campaigns/{campaign.pk}/next/", {"count": 5}, format="json")
    assert len(response.json()["items"]) == 5
    assert "(69 pictures, 0 new)" in out.getvalue()  # the second run added nothing
