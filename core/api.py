"""API conventions shared by every app: one error shape, produced here and nowhere else.

Every error answers ``{"error": {"code": str, "message": str, "fields": {...}}}``; ``fields`` holds
per-field messages for validation errors and is omitted otherwise. Services refuse with
``core.errors.ApplicationError`` (code, status, message, extra); views never translate it themselves.
"""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import ApplicationError


def _first_message(detail) -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            message = _first_message(value)
            return message if key in {"non_field_errors", "detail"} else f"{key}: {message}"
        return "Invalid input."
    if isinstance(detail, list):
        return _first_message(detail[0]) if detail else "Invalid input."
    return str(detail)


def error_body(*, code: str, message: str, fields=None, **extra) -> dict:
    error = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    error.update(extra)
    return {"error": error}


def application_error_body(exc: ApplicationError) -> dict:
    """The body answering a service's refusal (with ``exc.status``)."""
    return error_body(code=exc.code, message=exc.message, **exc.extra)


def exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        return Response(application_error_body(exc), status=exc.status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    detail = exc.detail if isinstance(exc, exceptions.APIException) else response.data
    codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
    if isinstance(exc, exceptions.ValidationError):
        fields = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        body = error_body(code="invalid", message=_first_message(detail), fields=fields)
    else:
        code = codes if isinstance(codes, str) else "error"
        body = error_body(code=code, message=_first_message(detail))
        extra = getattr(exc, "extra", None)
        if extra:
            body["error"].update(extra)
    return Response(body, status=response.status_code, headers=_kept_headers(response))


def _kept_headers(response: Response) -> dict:
    return {k: v for k, v in response.items() if k in {"WWW-Authenticate", "Retry-After", "Allow"}}
