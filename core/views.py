"""Home, health and the login-exempt operational endpoints."""

from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core.health import health_report


def home(request):
    return render(request, "core/home.html")


@login_not_required
@never_cache
@require_GET
def healthz(request):
    report = health_report(include_worker=request.GET.get("worker") == "1")
    return JsonResponse(report, status=200 if report["ok"] else 503)
