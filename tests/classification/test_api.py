"""POST /api/v1/classify/: one URL or a batch; refused URLs are results with their error; bad input is 400."""

import pytest

from classification.models import Image
from tests.classification.conftest import Reply

ENDPOINT = "/api/v1/classify/"


@pytest.mark.django_db
def test_one_url_is_classified(api_as, reviewer, picture_server, allow_loopback, stock_red_jpeg):
    picture_server.serve("/a.jpg", stock_red_jpeg)
    response = api_as(reviewer).post(ENDPOINT, {"url": picture_server.url("/a.jpg")}, format="json")
    assert response.status_code == 200
    (result,) = response.json()["results"]
    image = Image.objects.get()
    assert result == {
        "url": picture_server.url("/a.jpg"),
        "sha256": image.sha256,
        "image_type": "Stock",
        "color": "Red",
        "scores": {"image_type": pytest.approx(result["scores"]["image_type"]), "color": result["scores"]["color"]},
        "source": "ml",
        "cached": False,
        "model": "builtin-1",
        "error": None,
    }
    assert 0.5 <= result["scores"]["image_type"] <= 1


@pytest.mark.django_db
def test_batch_keeps_order_and_reports_refused_and_failed_urls_as_results(
    api_as, reviewer, picture_server, allow_loopback, stock_red_jpeg, dealer_blue_jpeg
):
    picture_server.serve("/a.jpg", stock_red_jpeg)
    picture_server.serve("/b.jpg", dealer_blue_jpeg)
    picture_server.routes["/gone.jpg"] = lambda _h: Reply(404, b"")
    picture_server.serve("/page.html", b"<html></html>", content_type="text/html")
    urls = [
        picture_server.url("/a.jpg"),
        "http://169.254.169.254/latest/meta-data/",
        picture_server.url("/b.jpg"),
        picture_server.url("/gone.jpg"),
        "file:///etc/passwd",
        picture_server.url("/page.html"),
        picture_server.url("/a.jpg"),
    ]
    response = api_as(reviewer).post(ENDPOINT, {"urls": urls}, format="json")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["url"] for r in results] == urls
    assert [r["error"] for r in results] == [
        None,
        "blocked_address",
        None,
        "http_404",
        "blocked_scheme",
        "not_an_image",
        None,
    ]
    assert [r["image_type"] for r in results] == [
        "Stock",
        "Placeholder",
        "Dealer",
        "Placeholder",
        "Placeholder",
        "Placeholder",
        "Stock",
    ]
    assert [r["source"] for r in results] == ["ml", "default", "ml", "default", "default", "default", "ml"]
    assert results[1]["sha256"] is None and results[1]["color"] is None
    assert results[6] == results[0]  # a URL repeated in a batch is fetched once and answered alike


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "either"),
        ({"url": "http://a.example/1.jpg", "urls": ["http://a.example/2.jpg"]}, "either"),
        ({"urls": []}, "urls"),
        ({"urls": "http://a.example/1.jpg"}, "urls"),
        ({"urls": [f"http://a.example/{i}.jpg" for i in range(101)]}, "At most 100"),
        ({"url": ""}, "url"),
        ({"url": 12}, None),
        ({"url": "http://a.example/1.jpg", "advertiser": "not a slug!"}, "advertiser"),
    ],
)
def test_bad_input_is_a_400_with_a_message(api_as, reviewer, body, message):
    response = api_as(reviewer).post(ENDPOINT, body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and error["message"]
    if message:
        assert message in error["message"]


@pytest.mark.django_db
def test_a_json_list_body_is_a_400(api_as, reviewer):
    response = api_as(reviewer).post(ENDPOINT, ["http://a.example/1.jpg"], format="json")
    assert response.status_code == 400


@pytest.mark.django_db
def test_only_staff_may_ask_for_an_advertisers_view(api_as, advertiser_user):
    response = api_as(advertiser_user).post(
        ENDPOINT, {"url": "http://a.example/1.jpg", "advertiser": "acme"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


@pytest.mark.django_db
def test_anonymous_callers_are_refused(api_client):
    response = api_client.post(ENDPOINT, {"url": "http://a.example/1.jpg"}, format="json")
    assert response.status_code in (401, 403)


@pytest.mark.django_db
def test_batch_costs_a_bounded_number_of_queries(
    api_as, reviewer, picture_server, allow_loopback, stock_red_jpeg, django_assert_max_num_queries
):
    client = api_as(reviewer)
    for i in range(30):
        picture_server.serve(f"/{i}.jpg", stock_red_jpeg)
    urls = [picture_server.url(f"/{i}.jpg") for i in range(30)]
    client.post(ENDPOINT, {"urls": urls}, format="json")  # first pass classifies the one picture
    with django_assert_max_num_queries(8):
        response = client.post(ENDPOINT, {"urls": urls}, format="json")
    assert all(r["cached"] for r in response.json()["results"])


@pytest.mark.django_db
def test_a_slow_batch_answers_in_time_with_timeouts(api_as, reviewer, picture_server, allow_loopback, settings):
    import time

    from tests.classification.conftest import trickle

    settings.SPOTCHECK_CLASSIFY_API_DEADLINE = 1.0
    settings.SPOTCHECK_FETCH_CONCURRENCY = 2
    for i in range(6):
        picture_server.raw_routes[f"/slow{i}.jpg"] = lambda h: trickle(h, interval=0.2, total=50)
    urls = [picture_server.url(f"/slow{i}.jpg") for i in range(6)]
    started = time.monotonic()
    response = api_as(reviewer).post(ENDPOINT, {"urls": urls}, format="json")
    assert time.monotonic() - started < 2.5
    assert [r["error"] for r in response.json()["results"]] == ["timeout"] * 6
