"""Image keys against a local server: conditional GETs answered 304 are hits without a download; with no
or rotating validators the SHA-256 decides; a known picture is never classified twice."""

import itertools

import pytest

from classification.cache import fix_push
from classification.models import GroundTruth, Image, ImageSource
from classification.services import fix_record, urls_check, urls_classify

from .conftest import Reply

LAST_MODIFIED = "Wed, 21 Oct 2026 07:28:00 GMT"


def conditional(body: bytes, *, etag: str | None = None, last_modified: str | None = None):
    """A well-behaved origin: 304 when the client's validators match."""

    def route(headers):
        validators = {}
        if etag:
            validators["ETag"] = etag
        if last_modified:
            validators["Last-Modified"] = last_modified
        inm, ims = headers.get("if-none-match"), headers.get("if-modified-since")
        if etag and inm:
            # Weak comparison, as RFC 9110 says for If-None-Match on GET.
            if inm.removeprefix("W/") == etag.removeprefix("W/"):
                return Reply(304, b"", validators)
        elif last_modified and ims == last_modified:
            return Reply(304, b"", validators)
        return Reply(200, body, {"Content-Type": "image/jpeg", **validators})

    return route


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("validators", "sent_header"),
    [
        ({"etag": '"v1-strong"'}, ("if-none-match", '"v1-strong"')),
        ({"etag": 'W/"v1-weak"'}, ("if-none-match", 'W/"v1-weak"')),
        ({"last_modified": LAST_MODIFIED}, ("if-modified-since", LAST_MODIFIED)),
    ],
    ids=["strong-etag", "weak-etag", "last-modified-only"],
)
def test_known_url_is_rechecked_with_a_conditional_get_and_a_304_is_a_hit(
    picture_server, allow_loopback, classifier_runs, stock_red_jpeg, validators, sent_header
):
    picture_server.routes["/car.jpg"] = conditional(stock_red_jpeg, **validators)
    url = picture_server.url("/car.jpg")
    outcomes = [urls_classify(urls=[url])[0] for _ in range(3)]

    assert picture_server.statuses("/car.jpg") == [200, 304, 304]
    later = picture_server.requests("/car.jpg")[1:]
    assert all(r.headers.get(sent_header[0]) == sent_header[1] for r in later)
    assert len(classifier_runs) == 1
    assert [o.cached for o in outcomes] == [False, True, True]
    assert len({o.image_id for o in outcomes}) == 1 and outcomes[0].image_id is not None
    assert [o.values["image_type"]["value"] for o in outcomes] == ["Stock"] * 3
    source = ImageSource.objects.get(url=url)
    assert (source.check_count, source.last_status, source.error) == (3, 304, "")


@pytest.mark.django_db
def test_no_validators_means_download_and_the_sha256_decides(
    picture_server, allow_loopback, classifier_runs, stock_red_jpeg
):
    picture_server.serve("/plain.jpg", stock_red_jpeg)
    url = picture_server.url("/plain.jpg")
    first, second = urls_classify(urls=[url])[0], urls_classify(urls=[url])[0]
    assert picture_server.statuses("/plain.jpg") == [200, 200]
    assert all("if-none-match" not in r.headers for r in picture_server.requests("/plain.jpg"))
    assert len(classifier_runs) == 1
    assert (first.cached, second.cached) == (False, True)
    assert first.sha256 == second.sha256 and Image.objects.count() == 1


@pytest.mark.django_db
def test_rotating_validators_download_again_but_never_classify_again(
    picture_server, allow_loopback, classifier_runs, stock_red_jpeg
):
    counter = itertools.count()

    def rotating(headers):
        n = next(counter)  # a CDN that mints a new ETag and date on every answer
        return Reply(
            200, stock_red_jpeg, {"ETag": f'"edge-{n}"', "Last-Modified": f"Wed, 21 Oct 2026 07:{n:02d}:00 GMT"}
        )

    picture_server.routes["/rot.jpg"] = rotating
    url = picture_server.url("/rot.jpg")
    outcomes = [urls_classify(urls=[url])[0] for _ in range(3)]
    requests = picture_server.requests("/rot.jpg")
    assert picture_server.statuses("/rot.jpg") == [200, 200, 200]
    assert [r.headers.get("if-none-match") for r in requests] == [None, '"edge-0"', '"edge-1"']
    assert len(classifier_runs) == 1
    assert [o.cached for o in outcomes] == [False, True, True]
    assert ImageSource.objects.get(url=url).etag == '"edge-2"'


@pytest.mark.django_db
def test_a_fix_follows_the_picture_to_a_new_url(
    picture_server, allow_loopback, classifier_runs, stock_red_jpeg, reviewer
):
    picture_server.serve("/day1/car.jpg", stock_red_jpeg)
    first = urls_classify(urls=[picture_server.url("/day1/car.jpg")])[0]
    image = Image.objects.get(pk=first.image_id)
    fix = fix_record(image=image, attribute="image_type", value="Dealer", user=reviewer, advertiser="acme", staff=True)
    fix_push(ground_truth_id=fix.pk)  # what the sitemaps outbox does after the commit
    # The CDN moves the same bytes to a new URL a few days later.
    picture_server.serve("/day5/car-x81.jpg", stock_red_jpeg)
    moved = urls_classify(urls=[picture_server.url("/day5/car-x81.jpg")])[0]
    assert moved.image_id == image.pk
    assert moved.values["image_type"] == {"value": "Dealer", "score": None, "source": GroundTruth.Source.STAFF_FIX}
    assert moved.source == "fix" and moved.cached
    assert len(classifier_runs) == 1


@pytest.mark.django_db
def test_a_changed_picture_behind_the_same_url_is_classified(
    picture_server, allow_loopback, classifier_runs, stock_red_jpeg, dealer_blue_jpeg
):
    picture_server.routes["/car.jpg"] = conditional(stock_red_jpeg, etag='"v1"')
    url = picture_server.url("/car.jpg")
    before = urls_classify(urls=[url])[0]
    picture_server.routes["/car.jpg"] = conditional(dealer_blue_jpeg, etag='"v2"')
    after = urls_classify(urls=[url])[0]
    assert picture_server.statuses("/car.jpg") == [200, 200]
    assert before.image_id != after.image_id
    assert (after.values["image_type"]["value"], after.values["color"]["value"]) == ("Dealer", "Blue")
    assert len(classifier_runs) == 2
    assert ImageSource.objects.get(url=url).image_id == after.image_id


@pytest.mark.django_db
def test_batch_with_duplicates_downloads_each_url_once_and_classifies_each_picture_once(
    picture_server, allow_loopback, classifier_runs, stock_red_jpeg
):
    for i in range(4):
        picture_server.serve(f"/same{i}.jpg", stock_red_jpeg)  # four URLs, one picture
    urls = [picture_server.url(f"/same{i}.jpg") for i in range(4)]
    outcomes = urls_classify(urls=urls + urls[:2])
    assert len(outcomes) == 6
    assert len({o.image_id for o in outcomes}) == 1
    assert len(classifier_runs) == 1
    assert all(len(picture_server.statuses(f"/same{i}.jpg")) == 1 for i in range(4))


@pytest.mark.django_db
def test_a_304_to_an_unconditional_request_is_an_error_not_a_hit(picture_server, allow_loopback):
    picture_server.routes["/liar.jpg"] = lambda _h: Reply(304, b"", {"ETag": '"x"'})
    (outcome,) = urls_classify(urls=[picture_server.url("/liar.jpg")])
    assert outcome.error == "http_304" and outcome.image_id is None
    assert ImageSource.objects.get().error == "http_304"


@pytest.mark.django_db
def test_a_batch_of_rechecks_keeps_every_guard(picture_server, allow_loopback, stock_red_jpeg):
    """304s are written in one batched statement; URLs refused by the guard in the same batch (private
    addresses, other schemes, a redirect into our network) still fail with their reason and are recorded."""
    etag = '"k1"'

    def conditional(headers):
        if headers.get("if-none-match") == etag:
            return Reply(304, b"", {"ETag": etag})
        return Reply(200, stock_red_jpeg, {"Content-Type": "image/jpeg", "ETag": etag})

    known = [picture_server.url(f"/known/{i}.jpg") for i in range(5)]
    for url in known:
        picture_server.routes[url.removeprefix(picture_server.base)] = conditional
    picture_server.routes["/into-our-network"] = lambda _h: Reply(302, b"", {"Location": "http://10.1.2.3/x.jpg"})
    urls_classify(urls=known)
    metadata, redirect = "http://169.254.169.254/latest/meta-data/", picture_server.url("/into-our-network")
    hostile = [metadata, "file:///etc/passwd", redirect]
    checks = urls_check(urls=known + hostile)
    assert [checks[u].status for u in known] == [304] * 5
    assert [checks[u].error for u in hostile] == ["blocked_address", "blocked_scheme", "blocked_address"]
    sources = {s.url: s for s in ImageSource.objects.all()}
    assert all((sources[u].check_count, sources[u].last_status, sources[u].error) == (2, 304, "") for u in known)
    assert [sources[u].error for u in hostile] == ["blocked_address", "blocked_scheme", "blocked_address"]
