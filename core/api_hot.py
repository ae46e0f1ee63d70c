"""A short way through DRF for the API's hottest endpoints (the labeling loop), answering exactly as DRF would.

DRF's dispatch (request wrapping, content negotiation, parser and authenticator selection, permission
objects, the rendered template response) cost about as much CPU as recording the answer itself. A
``HotAPIView`` takes a request the short way when it is plainly ordinary: a POST with a JSON body (no query
string, an Accept that can only mean JSON), from a user who is known without a query (a remembered API token,
or the session with its CSRF check passed) and holds the view's roles. Its ``hot`` method then answers, or
gives the request back (``None``) before it changed anything, and DRF answers: every refusal of the gate
(401, 403, 404, 405, 413, a body that is not a JSON object…) comes from DRF itself, so there is one judge of
each. The view class stays an APIView, so the OpenAPI schema and every other method are unchanged.
"""

from __future__ import annotations

import copy
from functools import wraps

from django.conf import settings
from django.http import HttpResponse
from django.utils.cache import patch_vary_headers
from rest_framework import HTTP_HEADER_ENCODING, exceptions
from rest_framework.authentication import SessionAuthentication
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from core.api import application_error_body
from core.authentication import tokens
from core.errors import ApplicationError
from core.json_input import json_body_parse
from core.permissions import RolePermission
from core.roles import has_role

# What DRF's content negotiation turns into JSONRenderer whatever the renderers after it (an empty Accept is
# a 406 there), and the one body type the clients send (DRF also takes parameters, upper case, other parsers).
_JSON_ACCEPTS = frozenset({None, "*/*", "application/json"})
_JSON = "application/json"
_render = JSONRenderer().render
_session = SessionAuthentication()


def _plain_json(request) -> bool:
    if request.method != "POST" or request.META.get("QUERY_STRING"):
        return False
    if request.META.get("HTTP_ACCEPT") not in _JSON_ACCEPTS:
        return False
    return request.META.get("CONTENT_TYPE") == _JSON


def _known_user(request):
    """The user DRF's authentication would find, when finding it costs no query and refuses nothing; else None."""
    header = request.META.get("HTTP_AUTHORIZATION")
    if header is not None:
        try:  # split as TokenAuthentication splits it (bytes: ASCII whitespace only)
            parts = header.encode(HTTP_HEADER_ENCODING).split()
            key = parts[1].decode() if len(parts) == 2 and parts[0].lower() == b"token" else None
        except UnicodeError:
            return None
        known = None if key is None else tokens.get(key)
        return None if known is None else copy.copy(known[0])
    user = request.user  # the session's (AuthenticationMiddleware), as SessionAuthentication reads it
    if not user or not user.is_active:
        return None
    try:
        _session.enforce_csrf(request)
    except exceptions.PermissionDenied:
        return None
    return user


def _body(request):
    """The parsed body as StrictJSONParser reads it, or None when DRF should say what is wrong with it."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if length == 0:
        return {}  # DRF parses no body at all then
    if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        return None
    try:
        return json_body_parse(request.body, limit=settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    except exceptions.APIException:
        return None


class HotAPIView(APIView):
    """An APIView whose ``hot(request, user, data, **kwargs)`` answers ordinary POSTs: ``(status, payload)``,
    or None to let DRF handle the request (only before anything was written). An ApplicationError it raises
    answers as core.api.exception_handler would."""

    @classmethod
    def hot(cls, request, user, data, **kwargs) -> tuple[int, dict] | None:
        raise NotImplementedError

    @classmethod
    def as_view(cls, **initkwargs):
        drf_view = super().as_view(**initkwargs)
        headers = cls(**initkwargs).default_response_headers
        vary = headers.pop("Vary", None)
        roles = [p.roles for p in cls.permission_classes]
        assert all(issubclass(p, RolePermission) and not p.hidden for p in cls.permission_classes)

        @wraps(drf_view)  # keeps cls, initkwargs (the schema reads them) and csrf_exempt
        def view(request, *args, **kwargs):
            if not _plain_json(request):
                return drf_view(request, *args, **kwargs)
            user = _known_user(request)
            if user is None or not all(has_role(user, *r) for r in roles):
                return drf_view(request, *args, **kwargs)
            data = _body(request)
            if data is None:
                return drf_view(request, *args, **kwargs)
            request.user = user  # as DRF leaves it, for the request log
            try:
                answer = cls.hot(request, user, data, **kwargs)
            except ApplicationError as exc:
                answer = (exc.status, application_error_body(exc))
            if answer is None:
                return drf_view(request, *args, **kwargs)
            status, payload = answer
            response = HttpResponse(_render(payload), status=status, content_type=_JSON)
            if vary:
                patch_vary_headers(response, [vary])
            for key, value in headers.items():
                response[key] = value
            return response

        return view
