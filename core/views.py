"""Home, health and the login-exempt operational endpoints."""

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core.demo import DEMO_PASSWORD, DEMO_USERS
from core.health import health_report


class LoginView(auth_views.LoginView):
    """Django's login; in the embedded (DEBUG) setup it also names the demo logins."""

    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if settings.DEBUG:
            context["demo_logins"] = [fields["username"] for fields in DEMO_USERS.values()]
            context["demo_password"] = DEMO_PASSWORD
        return context


def home(request):
    return render(request, "core/home.html")


@login_not_required
@never_cache
@require_GET
def healthz(request):
    report = health_report(include_worker=request.GET.get("worker") == "1")
    return JsonResponse(report, status=200 if report["ok"] else 503)
