"""One way to say no: ``ApplicationError``, raised by services (or subclassed by an app for its refusals)
and mapped once, by ``core.api.exception_handler`` for the API and ``ApplicationErrorMiddleware`` for pages.

The API answers ``{"error": {"code": code, "message": message, **extra}}`` with ``status``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect


class ApplicationError(Exception):
    """A request refused for a reason the caller can act on. Subclasses set ``code`` and ``status``."""

    code = "invalid"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self._extra = dict(extra or {})

    @property
    def extra(self) -> dict:
        """More members of the error object (a subclass may compute them when the answer is built)."""
        return self._extra


class Conflict(ApplicationError):
    """The resource is not in a state that allows this."""

    code = "conflict"
    status = 409


class ApplicationErrorMiddleware:
    """Pages: a refusal that no view showed as a message answers like the pages always did: 404 and 403
    through Django's own pages, anything else 400 with the message as text."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, ApplicationError):
            return None
        if exception.status == 404:
            raise Http404(exception.message) from exception
        if exception.status == 403:
            raise PermissionDenied(exception.message) from exception
        return HttpResponseBadRequest(exception.message)


def refusal_as_message(redirect_to: str | Callable[[HttpRequest], str]):
    """Page views that post a form: an ApplicationError becomes an error message and a redirect to
    ``redirect_to`` (a URL name, or a function of the request giving the URL)."""

    def decorator(view):
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            try:
                return view(request, *args, **kwargs)
            except ApplicationError as exc:
                messages.error(request, exc.message)
                return redirect(redirect_to(request) if callable(redirect_to) else redirect_to)

        return wrapper

    return decorator
