"""Services: pictures from bytes (deduplicated, classified once), reclassification, the reuse hook,
near-duplicates, and the values other apps read."""

import io

import pytest
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from classification import cache
from classification.imaging import ImageRejected
from classification.models import FetchError, GroundTruth, Image, ImageSource, ModelVersion, Prediction
from classification.selectors import image_values, images_near_duplicate
from classification.services import (
    REASON_REUSED,
    fix_record,
    image_from_bytes,
    image_reclassify,
    images_reused_placeholder_apply,
    urls_classify,
)
from classification.synthetic import picture, picture_bytes
from tests.support import needs_postgres


@pytest.mark.django_db
def test_image_from_bytes_classifies_once_and_records_the_version(classifier_runs, stock_red_jpeg):
    image = image_from_bytes(data=stock_red_jpeg, url="https://cdn.example.com/1.jpg")
    again = image_from_bytes(data=stock_red_jpeg, url="https://cdn.example.com/2.jpg")
    assert again.pk == image.pk and len(classifier_runs) == 1
    predictions = {p.attribute: p for p in Prediction.objects.filter(image=image).select_related("model_version")}
    assert predictions["image_type"].value == "Stock" and predictions["color"].value == "Red"
    active = ModelVersion.objects.get(backend="builtin", status="active")
    assert {p.model_version_id for p in predictions.values()} == {active.pk}
    assert image.classified_at is not None and image.phash is not None
    assert (image.width, image.height, image.format) == (640, 480, "JPEG")
    assert default_storage.exists(image.thumbnail.name)
    assert set(ImageSource.objects.values_list("url", "image_id")) == {
        ("https://cdn.example.com/1.jpg", image.pk),
        ("https://cdn.example.com/2.jpg", image.pk),
    }


@pytest.mark.django_db
def test_bad_bytes_raise_with_a_reason_and_mark_the_source():
    with pytest.raises(ImageRejected) as rejected:
        image_from_bytes(data=b"<html>sorry</html>", url="https://cdn.example.com/x.jpg")
    assert rejected.value.reason == FetchError.NOT_AN_IMAGE
    assert ImageSource.objects.get().error == FetchError.NOT_AN_IMAGE
    assert Image.objects.count() == 0


@pytest.mark.django_db
def test_values_follow_precedence_for_each_advertiser(picture_server, allow_loopback, stock_red_jpeg, reviewer):
    picture_server.serve("/a.jpg", stock_red_jpeg)
    url = picture_server.url("/a.jpg")
    image = Image.objects.get(pk=urls_classify(urls=[url])[0].image_id)
    staff = fix_record(image=image, attribute="color", value="Blue", user=reviewer, advertiser="", staff=True)
    mine = fix_record(image=image, attribute="color", value="Green", user=None, advertiser="acme", staff=False)
    for gt in (staff, mine):
        cache.fix_push(ground_truth_id=gt.pk)
    acme, other, staff_view = (urls_classify(urls=[url], advertiser=a)[0] for a in ("acme", "zenith", None))
    assert acme.values["color"]["value"] == "Green" and acme.values["color"]["source"] == "advertiser_fix"
    assert other.values["color"]["value"] == "Blue" and other.values["color"]["source"] == "staff_fix"
    assert staff_view.values["color"]["value"] == "Blue"
    assert acme.source == "ml" and acme.values["image_type"]["value"] == "Stock"  # type untouched
    # The cache answers exactly like the database selector.
    db = image_values(image_ids=[image.pk], advertiser="acme")[image.pk]
    assert {a: (r.value, r.source) for a, r in db.items()} == {
        a: (v["value"], v["source"]) for a, v in acme.values.items()
    }


@pytest.mark.django_db
def test_reused_picture_hook_turns_pictures_into_placeholders_once(dealer_blue_jpeg, stock_red_jpeg):
    dealer = image_from_bytes(data=dealer_blue_jpeg)
    stock = image_from_bytes(data=stock_red_jpeg)
    cache.entries_get(image_ids=[dealer.pk, stock.pk])  # both cached before the hook
    assert images_reused_placeholder_apply(image_ids=[dealer.pk, stock.pk]) == 2
    assert images_reused_placeholder_apply(image_ids=[dealer.pk, stock.pk]) == 0
    rows = Prediction.objects.filter(image=dealer)
    assert {(p.attribute, p.value, p.reason) for p in rows} == {
        ("image_type", "Placeholder", REASON_REUSED),
        ("color", "", REASON_REUSED),
    }
    entry = cache.entries_get(image_ids=[dealer.pk])[dealer.pk]
    values = cache.entry_values(entry, advertiser=None)
    assert values["image_type"].value == "Placeholder" and values["color"].value is None


@pytest.mark.django_db
def test_reclassify_runs_a_new_version_once_and_leaves_ground_truth_alone(stock_red_jpeg, reviewer, classifier_runs):
    image = image_from_bytes(data=stock_red_jpeg)
    fix = fix_record(image=image, attribute="image_type", value="Dealer", user=reviewer, advertiser="", staff=True)
    old = ModelVersion.objects.get(backend="builtin", status="active")
    newer = ModelVersion.objects.create(
        name="builtin-strict", backend="builtin", params={"stock_min_concentration": 1.01}
    )
    assert image_reclassify(image_id=image.pk, model_version_id=newer.pk) is True
    assert image_reclassify(image_id=image.pk, model_version_id=newer.pk) is False  # already by that version
    assert image_reclassify(image_id=image.pk) is True  # back to the active one
    assert len(classifier_runs) == 3
    predictions = Prediction.objects.filter(image=image)
    assert set(predictions.values_list("model_version_id", flat=True)) == {old.pk}
    assert list(GroundTruth.objects.values_list("id", "value")) == [(fix.pk, "Dealer")]


@pytest.mark.django_db
def test_reclassify_records_the_new_version_in_the_cache(stock_red_jpeg):
    image = image_from_bytes(data=stock_red_jpeg)
    cache.entries_get(image_ids=[image.pk])
    strict = ModelVersion.objects.create(name="strict", backend="builtin", params={"stock_min_concentration": 1.01})
    image_reclassify(image_id=image.pk, model_version_id=strict.pk)
    entry = cache.entries_get(image_ids=[image.pk])[image.pk]
    assert cache.entry_model(entry) == "strict"
    assert cache.entry_values(entry, advertiser=None)["image_type"].value == "Dealer"


def _jpeg(img: PILImage.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


@pytest.mark.django_db
def test_near_duplicates_are_found_by_perceptual_hash():
    original = picture(kind="dealer", color="Green", seed=7)
    base = image_from_bytes(data=_jpeg(original, 90))
    resized = image_from_bytes(data=_jpeg(original.resize((700, 525)), 60))
    other = image_from_bytes(data=picture_bytes(kind="dealer", color="Green", seed=8))
    found = images_near_duplicate(image=base)
    assert [i.pk for i in found] == [resized.pk]
    assert other.pk not in [i.pk for i in images_near_duplicate(image=base, max_distance=10)]
    assert [i.pk for i in images_near_duplicate(image=resized)] == [base.pk]


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_new_bytes_from_two_threads_make_one_picture(dealer_blue_jpeg):
    import threading

    from django.db import connection

    barrier = threading.Barrier(2)
    results, errors = [], []

    def submit():
        try:
            barrier.wait()
            results.append(image_from_bytes(data=dealer_blue_jpeg).pk)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(set(results)) == 1 and Image.objects.count() == 1
    assert Prediction.objects.count() == 2
