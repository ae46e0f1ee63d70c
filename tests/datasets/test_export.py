"""Dataset export: which pictures go in, with which label, in which split, and what the files look like."""

import csv
import io
import json
import random
import zipfile
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from classification.models import GroundTruth, ImageSource
from core.jobs import JobStatus
from datasets.export import (
    ExportError,
    export_params_build,
    export_run,
    manifest_rows,
    near_duplicate_pairs,
    split_of,
)
from datasets.models import DatasetExport
from datasets.services import export_request

pytestmark = pytest.mark.django_db


def run(*, manifest_only=False, **kw) -> DatasetExport:
    kw.setdefault("attribute", "image_type")
    export = export_request(params=export_params_build(**kw), manifest_only=manifest_only, enqueue=False)
    return export_run(export_id=export.pk)


def manifest_of(export) -> list[dict]:
    return list(manifest_rows(export))


def manifest_bytes(export) -> bytes:
    with default_storage.open(export.manifest.name, "rb") as f:
        return f.read()


def test_conflicting_picture_is_left_out_by_default(make_image, truth):
    agreed, disputed = make_image(), make_image()
    truth(agreed, "Dealer", source="consensus", votes=5, margin=4)
    truth(agreed, "Dealer", source="staff_fix")
    truth(disputed, "Stock", source="staff_fix")
    truth(disputed, "Dealer", source="advertiser_fix", advertiser="acme")

    export = run()

    assert export.status == JobStatus.DONE
    rows = manifest_of(export)
    assert [r["sha256"] for r in rows] == [agreed.sha256]
    assert rows[0]["label"] == "Dealer"
    assert rows[0]["source"] == "staff_fix+consensus"
    assert (rows[0]["votes"], rows[0]["margin"]) == ("5", "4")
    assert export.summary["excluded"]["conflicting"] == 1


def test_conflicting_picture_included_on_request_takes_staff_word_over_advertiser(make_image, truth):
    disputed = make_image()
    truth(disputed, "Stock", source="staff_fix")
    truth(disputed, "Dealer", source="advertiser_fix", advertiser="acme")

    rows = manifest_of(run(include_conflicting=True))

    assert [(r["sha256"], r["label"], r["source"]) for r in rows] == [(disputed.sha256, "Stock", "staff_fix")]


def test_a_newer_staff_fix_replaces_an_older_one_instead_of_conflicting_with_it(make_image, truth):
    image = make_image()
    truth(image, "Stock", source="staff_fix", ago=10)
    truth(image, "Dealer", source="staff_fix", ago=5)
    truth(image, "Dealer", source="consensus", ago=1)

    rows = manifest_of(run())

    assert [(r["label"], r["source"]) for r in rows] == [("Dealer", "staff_fix+consensus")]


def test_two_advertisers_disagreeing_make_a_conflict(make_image, truth):
    image = make_image()
    truth(image, "Stock", source="advertiser_fix", advertiser="acme")
    truth(image, "Dealer", source="advertiser_fix", advertiser="globex")

    export = run()

    assert manifest_of(export) == []
    assert export.summary["excluded"]["conflicting"] == 1


def test_since_the_last_export_picks_only_pictures_with_newer_ground_truth(make_image, truth):
    old, relabelled = make_image(), make_image()
    truth(old, "Dealer", ago=60)
    truth(relabelled, "Dealer", source="staff_fix", ago=60)
    first = run()
    assert {r["sha256"] for r in manifest_of(first)} == {old.sha256, relabelled.sha256}

    new = make_image()
    truth(new, "Stock")
    truth(relabelled, "Placeholder", source="staff_fix")

    second = run(since_last_export=True)

    assert second.params["since"] == first.snapshot_at.isoformat()
    rows = {r["sha256"]: r["label"] for r in manifest_of(second)}
    assert rows == {new.sha256: "Stock", relabelled.sha256: "Placeholder"}


def test_since_a_date_filters_on_when_the_ground_truth_was_recorded(make_image, truth):
    old, new = make_image(), make_image()
    truth(old, "Dealer", ago=60 * 24 * 3)
    truth(new, "Dealer", ago=5)

    rows = manifest_of(run(since=timezone.now() - timedelta(days=1)))

    assert [r["sha256"] for r in rows] == [new.sha256]


def test_ground_truth_recorded_after_the_snapshot_is_not_read(make_image, truth):
    image = make_image()
    truth(image, "Dealer", ago=5)
    export = export_request(params=export_params_build(attribute="image_type"), enqueue=False)
    truth(image, "Stock", source="staff_fix")  # arrives while the export waits in the queue

    rows = manifest_of(export_run(export_id=export.pk))

    assert [r["label"] for r in rows] == ["Dealer"]


def test_small_pictures_and_unwanted_classes_and_sources_are_filtered(make_image, truth):
    small = make_image(width=100, height=600)
    dealer, stock, from_crowd = make_image(), make_image(), make_image()
    truth(small, "Dealer", source="staff_fix")
    truth(dealer, "Dealer", source="staff_fix")
    truth(stock, "Stock", source="staff_fix")
    truth(from_crowd, "Dealer", source="consensus")

    export = run(sources=["staff_fix"], classes=["Dealer"])

    assert [r["sha256"] for r in manifest_of(export)] == [dealer.sha256]
    assert export.summary["excluded"] == {"other_class": 1, "too_small": 1}
    assert [r["sha256"] for r in manifest_of(run(min_width=64, min_height=64, sources=["staff_fix"]))] == sorted(
        [small.sha256, dealer.sha256, stock.sha256]
    )


def test_cap_per_class_keeps_the_same_pictures_every_time(make_image, truth):
    for _ in range(6):
        truth(make_image(), "Dealer")
    truth(make_image(), "Stock")

    first = run(cap_per_class=3, seed=7)
    second = run(cap_per_class=3, seed=7)

    labels = [r["label"] for r in manifest_of(first)]
    assert labels.count("Dealer") == 3 and labels.count("Stock") == 1
    assert manifest_bytes(first) == manifest_bytes(second)
    assert first.summary["excluded"]["capped"] == 3


def test_near_duplicates_never_straddle_the_split(make_image, truth):
    rng = random.Random(1)
    families = []
    for _ in range(40):
        base = rng.getrandbits(64)
        members = []
        for _ in range(4):
            flipped = base
            for bit in rng.sample(range(64), rng.randint(0, 4)):
                flipped ^= 1 << bit
            signed = flipped - (1 << 64) if flipped >= 1 << 63 else flipped
            image = make_image(phash=signed)
            truth(image, rng.choice(["Dealer", "Stock"]))
            members.append(image.sha256)
        families.append(members)

    rows = {r["sha256"]: r["split"] for r in manifest_of(run(test_fraction=0.5, phash_threshold=8))}

    for members in families:
        assert len({rows[sha] for sha in members}) == 1, members
    assert set(rows.values()) == {"train", "test"}


def test_one_advertisers_pictures_stay_together_when_grouping_by_advertiser(make_image, truth):
    rng = random.Random(2)
    by_advertiser = {}
    for slug in ["a", "b", "c", "d", "e", "f", "g", "h"]:
        for _ in range(5):
            image = make_image(phash=rng.getrandbits(63))
            truth(image, "Dealer", source="advertiser_fix", advertiser=slug)
            by_advertiser.setdefault(slug, []).append(image.sha256)

    rows = manifest_of(run(test_fraction=0.5, group_by_advertiser=True, seed=3))

    split = {r["sha256"]: r["split"] for r in rows}
    for members in by_advertiser.values():
        assert len({split[sha] for sha in members}) == 1
    assert set(split.values()) == {"train", "test"}
    assert {r["advertiser"] for r in rows} == set(by_advertiser)


def test_near_duplicate_pairs_agree_with_brute_force():
    rng = random.Random(5)
    bases = [rng.getrandbits(64) for _ in range(30)]
    hashes = []
    for base in bases:
        for _ in range(3):
            h = base
            for bit in rng.sample(range(64), rng.randint(0, 7)):
                h ^= 1 << bit
            hashes.append(h)
    hashes.append(None)
    for threshold in (0, 3, 5, 7, 9):
        found = set()
        parent = list(range(len(hashes)))

        def find(i, parent=parent):
            while parent[i] != i:
                i = parent[i]
            return i

        items = [(i, h) for i, h in enumerate(hashes) if h is not None]
        for a, b in near_duplicate_pairs(items, threshold):
            found.add((a, b))
            parent[find(a)] = find(b)
        for i, hi in enumerate(hashes):
            for j, hj in enumerate(hashes):
                if i < j and hi is not None and hj is not None and (hi ^ hj).bit_count() <= threshold:
                    assert find(i) == find(j), (threshold, i, j)
        assert all((hashes[a] ^ hashes[b]).bit_count() <= threshold for a, b in found)


def test_split_is_a_stable_function_of_group_and_seed():
    assert split_of(group_key="abc", seed=1, test_fraction=0.2) == split_of(group_key="abc", seed=1, test_fraction=0.2)
    tests = sum(split_of(group_key=f"g{i}", seed=9, test_fraction=0.2) == "test" for i in range(2000))
    assert 300 < tests < 500
    assert split_of(group_key="abc", seed=1, test_fraction=0.0) == "train"
    assert split_of(group_key="abc", seed=1, test_fraction=1.0) == "test"


def test_same_parameters_and_data_give_the_same_manifest_bytes(make_image, truth):
    rng = random.Random(8)
    for i in range(30):
        image = make_image(phash=rng.getrandbits(63))  # far apart: 30 groups, so the seed matters
        truth(image, ["Dealer", "Stock", "Placeholder"][i % 3], url=f"https://cdn.example/{i}.jpg")

    first, second = run(seed=4), run(seed=4)
    other_seed = run(seed=5)

    assert manifest_bytes(first) == manifest_bytes(second)
    assert manifest_bytes(first) != manifest_bytes(other_seed)
    rows = manifest_of(first)
    assert [r["sha256"] for r in rows] == sorted(r["sha256"] for r in rows)
    assert (
        manifest_bytes(first).splitlines()[0] == b"sha256,split,label,source,votes,margin,advertiser,url,width,height"
    )


def test_zip_holds_a_folder_per_class_per_split_with_manifest_and_summary(make_image, truth):
    images = {}
    for i in range(12):
        image = make_image()
        images[image.sha256] = ["Dealer", "Stock"][i % 2]
        truth(image, images[image.sha256])
    position = make_image()
    truth(position, "front-3/4", attribute="position")

    export = run(test_fraction=0.3)

    with default_storage.open(export.file.name, "rb") as f:
        archive = zipfile.ZipFile(io.BytesIO(f.read()))
    names = set(archive.namelist())
    assert {"manifest.csv", "summary.json"} <= names
    rows = list(csv.DictReader(io.TextIOWrapper(archive.open("manifest.csv"), encoding="utf-8")))
    for row in rows:
        path = f"{row['split']}/{row['label']}/{row['sha256']}.jpg"
        assert path in names
        assert archive.read(path)[:3] == b"\xff\xd8\xff"  # a JPEG
        assert images[row["sha256"]] == row["label"]
    assert len(rows) == 12 and len(names) == 14
    summary = json.loads(archive.read("summary.json"))
    assert summary["counts"] == export.counts
    assert sum(sum(c.values()) for c in export.counts.values()) == 12
    assert summary["parameters"]["test_fraction"] == 0.3

    # A class whose name holds a slash gets a safe folder.
    with default_storage.open(run(attribute="position").file.name, "rb") as f:
        assert any(n.endswith(f"/front-3_4/{position.sha256}.jpg") for n in zipfile.ZipFile(f).namelist())


def test_manifest_only_export_has_urls_and_no_pictures(make_image, truth):
    with_url, without_url = make_image(), make_image(thumbnail=False)
    truth(with_url, "Dealer", url="https://cdn.example/a.jpg")
    truth(without_url, "Stock")
    ImageSource.objects.create(url="https://cdn.example/first.jpg", url_hash="1" * 64, image=without_url)
    ImageSource.objects.create(url="https://cdn.example/second.jpg", url_hash="2" * 64, image=without_url)

    export = run(manifest_only=True)

    assert export.file.name.endswith(".csv")
    urls = {r["sha256"]: r["url"] for r in manifest_of(export)}
    assert urls == {with_url.sha256: "https://cdn.example/a.jpg", without_url.sha256: "https://cdn.example/first.jpg"}


def test_diff_against_the_previous_export_counts_added_removed_relabelled(make_image, truth):
    kept, relabelled, dropped = make_image(), make_image(), make_image()
    truth(kept, "Dealer", ago=30)
    truth(relabelled, "Dealer", ago=30)
    truth(dropped, "Stock", ago=30)
    first = run()
    truth(relabelled, "Stock", source="staff_fix", ago=0)
    truth(relabelled, "Stock", source="consensus", ago=0)
    truth(dropped, "Dealer", source="advertiser_fix", advertiser="acme")  # now conflicting
    added = make_image()
    truth(added, "Placeholder")

    second = run()

    assert second.diff["previous_id"] == first.pk
    assert (second.diff["added"], second.diff["removed"], second.diff["relabelled"]) == (1, 1, 1)
    assert second.diff["examples"]["relabelled"] == [{"sha256": relabelled.sha256, "old": "Dealer", "new": "Stock"}]


def test_missing_thumbnail_is_left_out_of_zip_and_manifest(make_image, truth):
    image, gone = make_image(), make_image()
    truth(image, "Dealer")
    truth(gone, "Dealer")
    default_storage.delete(gone.thumbnail.name)

    export = run()

    assert [r["sha256"] for r in manifest_of(export)] == [image.sha256]
    assert export.summary["excluded"]["missing_picture"] == 1


def test_export_that_breaks_is_marked_failed_with_its_reason(make_image, truth, monkeypatch):
    truth(make_image(), "Dealer")
    export = export_request(params=export_params_build(attribute="image_type"), enqueue=False)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(default_storage, "save", broken)
    with pytest.raises(OSError):
        export_run(export_id=export.pk)

    export.refresh_from_db()
    assert export.status == JobStatus.FAILED
    assert "disk full" in export.error


def test_done_export_is_not_rebuilt_when_the_task_runs_twice(make_image, truth):
    truth(make_image(), "Dealer")
    export = run()
    name = export.file.name

    again = export_run(export_id=export.pk)

    assert again.file.name == name
    assert DatasetExport.objects.get(pk=export.pk).status == JobStatus.DONE


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attribute": "size"}, "unknown attribute"),
        ({"classes": ["Truck"]}, "unknown image_type class"),
        ({"sources": ["rumour"]}, "unknown source"),
        ({"test_fraction": 1.5}, "test fraction"),
        ({"cap_per_class": 0}, "cap per class"),
        ({"phash_threshold": 40}, "near-duplicate threshold"),
    ],
)
def test_bad_parameters_are_refused_with_an_actionable_message(kwargs, message):
    kwargs.setdefault("attribute", "image_type")
    with pytest.raises(ExportError, match=message):
        export_params_build(**kwargs)


def test_ground_truth_is_never_written_by_an_export(make_image, truth):
    truth(make_image(), "Dealer")
    before = list(GroundTruth.objects.values_list("id", "value", "created_at"))
    run()
    assert list(GroundTruth.objects.values_list("id", "value", "created_at")) == before


def test_advertisers_come_from_the_registered_collection_too(make_image, truth, monkeypatch):
    from classification import collections

    images = [make_image(phash=random.Random(i).getrandbits(63)) for i in range(12)]
    for image in images:
        truth(image, "Dealer")
    shown_by = {image.pk: ["north" if n < 6 else "south"] for n, image in enumerate(images)}
    collection = collections.Collection(
        kind="advertiser",
        image_ids=lambda slug: [i for i, s in shown_by.items() if slug in s],
        keys_for=lambda ids: {i: shown_by[i] for i in ids if i in shown_by},
        choices=lambda: [("north", "North"), ("south", "South")],
    )
    monkeypatch.setitem(collections._registry, "advertiser", collection)

    rows = manifest_of(run(group_by_advertiser=True, test_fraction=0.5, seed=11))

    by_advertiser = {}
    for row in rows:
        by_advertiser.setdefault(row["advertiser"], set()).add(row["split"])
    assert set(by_advertiser) == {"north", "south"}
    assert all(len(splits) == 1 for splits in by_advertiser.values())


def test_progress_and_status_are_recorded_while_the_export_runs(make_image, truth, monkeypatch):
    from datasets import export as export_module

    for _ in range(3):
        truth(make_image(), "Dealer")
    export = export_request(params=export_params_build(attribute="image_type"), enqueue=False)
    seen = []
    original = export_module.split_of

    def spy(**kwargs):  # called in pass 2, once per group
        seen.append(DatasetExport.objects.values_list("status", "progress").get(pk=export.pk))
        return original(**kwargs)

    monkeypatch.setattr(export_module, "split_of", spy)
    export_run(export_id=export.pk)

    assert seen and all(status == JobStatus.RUNNING for status, _ in seen)
    assert seen[0][1] >= 40  # the ground-truth pass is behind it
    assert DatasetExport.objects.values_list("status", "progress").get(pk=export.pk) == (JobStatus.DONE, 100)


def test_chunk_boundaries_do_not_change_the_manifest(make_image, truth, monkeypatch):
    """Streaming in small chunks (other queries interleaved with the open cursor) gives the same bytes."""
    from datasets import export as export_module

    rng = random.Random(3)
    for i in range(25):
        image = make_image(phash=rng.getrandbits(63))
        truth(image, ["Dealer", "Stock"][i % 2], ago=5)
        if i % 4 == 0:
            truth(image, ["Dealer", "Stock"][i % 2], source="staff_fix")
    big = run(seed=1)

    monkeypatch.setattr(export_module, "CHUNK", 2)
    small = run(seed=1)

    assert manifest_bytes(big) == manifest_bytes(small)
    assert small.rows == 25


def test_a_second_delivery_leaves_a_running_export_to_its_worker_unless_the_worker_died(make_image, truth):
    truth(make_image(), "Dealer")
    export = export_request(params=export_params_build(attribute="image_type"), enqueue=False)
    DatasetExport.objects.filter(pk=export.pk).update(status=JobStatus.RUNNING, started_at=timezone.now())

    assert export_run(export_id=export.pk).status == JobStatus.RUNNING  # someone else is on it

    DatasetExport.objects.filter(pk=export.pk).update(started_at=timezone.now() - timedelta(hours=4))
    assert export_run(export_id=export.pk).status == JobStatus.DONE  # that worker died: taken over
