"""Every page requires login; the API answers 401/403 itself. Requests are logged as JSON lines."""

import logging
import time

from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.contrib.messages.middleware import MessageMiddleware

request_log = logging.getLogger("spotcheck.request")


class PagesLoginRequiredMiddleware(LoginRequiredMiddleware):
    """Django's LoginRequiredMiddleware, except for the API, whose own authentication answers 401/403
    instead of redirecting a machine to an HTML login page."""

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path_info.startswith("/api/"):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


class PagesMessageMiddleware(MessageMiddleware):
    """Django's MessageMiddleware, except for the API, which never shows a message: setting up the message
    storage on every labeling call cost more than some of the call's own work."""

    def process_request(self, request):
        if not request.path_info.startswith("/api/"):
            super().process_request(request)


class RequestLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        request_log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "ms": round((time.perf_counter() - started) * 1000, 1),
                "user_id": getattr(getattr(request, "user", None), "pk", None),
            },
        )
        return response
