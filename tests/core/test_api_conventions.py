"""The OpenAPI document, its browsable docs, and the one JSON error shape."""

import pytest
from rest_framework import serializers
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from core.errors import Conflict


@pytest.mark.django_db
def test_schema_is_openapi_3(api_as, reviewer):
    response = api_as(reviewer).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "Spotcheck API"


@pytest.mark.django_db
def test_docs_page_renders_swagger_ui_from_our_own_static_files(api_as, reviewer):
    response = api_as(reviewer).get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "/static/drf_spectacular_sidecar/" in html
    assert "cdn." not in html


class _Echo(serializers.Serializer):
    count = serializers.IntegerField(min_value=1, max_value=10)


class _EchoView(APIView):
    def post(self, request):
        _Echo(data=request.data).is_valid(raise_exception=True)
        raise Conflict("already decided")


@pytest.mark.django_db
def test_validation_error_has_one_shape_with_field_messages(reviewer):
    request = APIRequestFactory().post("/x", {"count": 99}, format="json")
    force_authenticate(request, reviewer)
    response = _EchoView.as_view()(request)
    assert response.status_code == 400
    assert response.data["error"]["code"] == "invalid"
    assert response.data["error"]["message"].startswith("count:")
    assert "count" in response.data["error"]["fields"]


@pytest.mark.django_db
def test_conflict_error_has_the_same_shape(reviewer):
    request = APIRequestFactory().post("/x", {"count": 3}, format="json")
    force_authenticate(request, reviewer)
    response = _EchoView.as_view()(request)
    assert response.status_code == 409
    assert response.data == {"error": {"code": "conflict", "message": "already decided"}}
