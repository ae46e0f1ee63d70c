"""Hostile request bodies are refused at the edge with a 400/413 in the one error shape, never a 500: deep
nesting, huge bodies, NUL characters and lone surrogates, integers no column holds, non-object bodies, and
over-long fields (refused, not silently cut)."""

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from sitemaps.models import Vehicle
from tests.labeling.conftest import CampaignFactory

DEEP = b'{"a": ' + b"[" * 1000 + b"]" * 1000 + b"}"


@pytest.fixture
def token_client(db, admin_user):
    """A real client with a token (no force_authenticate): the body goes through the whole request path."""
    client = Client()
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=admin_user).key}"
    return client


def _post(client, path: str, body: bytes):
    return client.post(path, data=body, content_type="application/json")


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    return response.json()["error"]


@pytest.mark.parametrize(
    "path", ["/api/v1/classify/", "/api/v1/advertisers/acme/scrapes/", "/api/v1/fixes/", "/api/v1/exports/"]
)
def test_json_nested_a_thousand_deep_is_refused_with_400(token_client, path):
    error = _error(_post(token_client, path, DEEP), 400)
    assert "nested deeper than" in error["message"]


def test_a_30_mb_body_answers_413_in_the_error_shape(token_client):
    body = b'{"fixes": "' + b"x" * (30 * 1024 * 1024) + b'"}'
    error = _error(_post(token_client, "/api/v1/fixes/", body), 413)
    assert error["code"] == "too_large"


@pytest.mark.parametrize(
    ("vehicle", "field"),
    [
        ({"external_id": "A\\u0000", "title": "t", "images": []}, "vehicles[0].external_id"),
        ({"external_id": "A", "title": "Car\\u0000", "images": []}, "vehicles[0].title"),
        ({"external_id": "A", "title": "t", "images": ["https://cdn.example.com/\\u0000"]}, "vehicles[0].images[0]"),
        ({"external_id": "A", "title": "\\ud800", "images": []}, "vehicles[0].title"),
        ({"external_id": "\\udfff", "title": "t", "images": []}, "vehicles[0].external_id"),
    ],
)
def test_nul_and_lone_surrogates_are_refused_with_a_400_naming_the_field(token_client, vehicle, field):
    import json

    raw = json.dumps({"vehicles": [vehicle]}).replace("\\\\u", "\\u").encode()
    error = _error(_post(token_client, "/api/v1/advertisers/acme/scrapes/", raw), 400)
    assert error["fields"] == {field: [error["message"].split(": ", 1)[1]]}
    assert field in error["message"]
    assert not Vehicle.objects.exists()


def test_an_integer_no_column_holds_is_refused_on_next(token_client):
    campaign = CampaignFactory()
    response = _post(token_client, f"/api/v1/campaigns/{campaign.pk}/next/", b'{"exclude": [%d]}' % 10**30)
    error = _error(response, 400)
    assert error["fields"] == {"exclude[0]": ["integer out of range"]}


@pytest.mark.parametrize("body", [b"[1, 2]", b'"advertiser"', b"17", b"null"])
def test_a_body_that_is_not_an_object_is_refused_on_fill(token_client, body):
    campaign = CampaignFactory()
    error = _error(_post(token_client, f"/api/v1/campaigns/{campaign.pk}/fill/", body), 400)
    assert "must be a JSON object" in error["message"]


def test_an_over_long_title_is_refused_not_cut(token_client):
    body = b'{"vehicles": [{"external_id": "A", "title": "' + b"t" * (30 * 1024 * 1024) + b'", "images": []}]}'
    error = _error(_post(token_client, "/api/v1/advertisers/acme/scrapes/", body), 400)
    assert error["vehicles"][0]["message"] == "title is longer than 300 characters"
    assert not Vehicle.objects.exists()


def test_non_finite_numbers_are_refused(token_client):
    _error(_post(token_client, "/api/v1/exports/", b'{"attribute": "image_type", "test_fraction": NaN}'), 400)
