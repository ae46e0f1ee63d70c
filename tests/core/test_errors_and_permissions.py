"""One way to say no: ApplicationError mapped once (API and pages), one permissions module for both."""

import pytest
from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.cache import SessionStore
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.test import RequestFactory
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from core import permissions
from core.errors import ApplicationError, ApplicationErrorMiddleware, refusal_as_message


class _Refusing(APIView):
    error: ApplicationError | None = None

    def post(self, request):
        raise self.error


def _answer(user, error: ApplicationError):
    request = APIRequestFactory().post("/x", {}, format="json")
    force_authenticate(request, user)
    return _Refusing.as_view(error=error)(request)


@pytest.mark.django_db
def test_an_application_error_answers_its_status_code_message_and_extra(reviewer):
    response = _answer(
        reviewer, ApplicationError("too late", code="item_closed", status=409, extra={"item": {"id": 3}})
    )
    assert response.status_code == 409
    assert response.data == {"error": {"code": "item_closed", "message": "too late", "item": {"id": 3}}}


@pytest.mark.django_db
def test_a_subclass_brings_its_own_code_and_status(reviewer):
    class Gone(ApplicationError):
        code, status = "gone", 410

    response = _answer(reviewer, Gone("it left"))
    assert (response.status_code, response.data) == (410, {"error": {"code": "gone", "message": "it left"}})


@pytest.mark.django_db
def test_a_plain_application_error_is_a_400_invalid(reviewer):
    response = _answer(reviewer, ApplicationError("say it differently"))
    assert (response.status_code, response.data["error"]["code"]) == (400, "invalid")


def _page_request(path="/p/", method="post"):
    request = getattr(RequestFactory(), method)(path, {"page": "2"})
    request.session = SessionStore()
    request._messages = FallbackStorage(request)
    return request


def test_a_page_refusal_answers_400_with_the_message():
    middleware = ApplicationErrorMiddleware(lambda request: HttpResponse())
    response = middleware.process_exception(_page_request(), ApplicationError("bad value"))
    assert (response.status_code, response.content) == (400, b"bad value")


def test_a_page_refusal_with_404_or_403_goes_to_djangos_own_pages():
    middleware = ApplicationErrorMiddleware(lambda request: HttpResponse())
    with pytest.raises(Http404):
        middleware.process_exception(_page_request(), ApplicationError("no", status=404))
    with pytest.raises(PermissionDenied):
        middleware.process_exception(_page_request(), ApplicationError("no", status=403))
    assert middleware.process_exception(_page_request(), ValueError("not ours")) is None


def test_a_form_page_shows_a_refusal_as_a_message_and_redirects():
    @refusal_as_message(lambda request: f"/back/?page={request.POST['page']}")
    def view(request):
        raise ApplicationError("export #4 is not finished")

    request = _page_request()
    response = view(request)
    assert (response.status_code, response["Location"]) == (302, "/back/?page=2")
    assert [m.message for m in get_messages(request)] == ["export #4 is not finished"]


@pytest.mark.django_db
@pytest.mark.parametrize(("hidden", "refusal"), [(False, PermissionDenied), (True, Http404)])
def test_a_page_for_some_roles_refuses_the_others(labeler, reviewer, hidden, refusal):
    @permissions.page_requires(*permissions.STAFF, hidden=hidden)
    def view(request):
        return HttpResponse("ok")

    request = _page_request(method="get")
    request.user = reviewer
    assert view(request).content == b"ok"
    request.user = labeler
    with pytest.raises(refusal):
        view(request)


class _StaffOnly(APIView):
    def get(self, request):
        return Response({"ok": True})


@pytest.mark.django_db
@pytest.mark.parametrize(("hidden", "status", "code"), [(False, 403, "permission_denied"), (True, 404, "not_found")])
def test_an_api_view_for_some_roles_refuses_the_others(labeler, reviewer, hidden, status, code):
    view = _StaffOnly.as_view(permission_classes=[permissions.api_requires(*permissions.STAFF, hidden=hidden)])
    factory = APIRequestFactory()

    def call(user):
        request = factory.get("/x")
        if user is not None:
            force_authenticate(request, user)
        return view(request)

    assert call(reviewer).status_code == 200
    refused = call(labeler)
    assert (refused.status_code, refused.data["error"]["code"]) == (status, code)
    assert call(None).status_code == 401  # anonymous: not authenticated, whatever the roles
