"""HTML pages: advertiser list with health, the review page with its one Update form (also posted by its
script, which then gets JSON), history (+ CSV), and the demo's login-exempt generated pictures."""

import csv
import re

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from classification.vocabulary import Attribute, Color, ImageType
from core import permissions
from core.api import error_body
from core.errors import ApplicationError
from core.roles import is_staff_reviewer
from sitemaps.access import advertiser_get_visible, advertisers_visible
from sitemaps.filters import FixHistoryFilterSet, SitemapFilterSet
from sitemaps.fixes import FixChange, fixes_apply
from sitemaps.ingest import classification_relaunch
from sitemaps.models import ManualFix
from sitemaps.rendering import vehicle_rows_html
from sitemaps.selectors import Filters, advertisers_health, fixes_history, sitemap_page

FIELD = re.compile(r"^(type|color)-(\d+)$")
ATTRIBUTE_OF = {"type": Attribute.IMAGE_TYPE, "color": Attribute.COLOR}


# Labelers (and users with no role) see no sitemap at all: same 404 as an advertiser that is not theirs.
sitemap_user = permissions.page_requires(*permissions.SITEMAPS, hidden=True, message="no sitemap")


@require_GET
@permissions.page_requires(*permissions.SITEMAPS, message="sitemaps are for reviewers, admins and advertiser users")
def advertiser_list(request: HttpRequest) -> HttpResponse:
    health = advertisers_health(advertisers=advertisers_visible(user=request.user))
    return render(request, "sitemaps/advertiser_list.html", {"health": health})


def _page_size(request: HttpRequest) -> int:
    try:
        size = int(request.GET.get("size", settings.SPOTCHECK_SITEMAP_PAGE_SIZE))
    except ValueError:
        size = settings.SPOTCHECK_SITEMAP_PAGE_SIZE
    return max(1, min(size, 100))


@require_http_methods(["GET", "POST"])
@sitemap_user
def review(request: HttpRequest, slug: str) -> HttpResponse:
    advertiser = advertiser_get_visible(user=request.user, slug=slug)
    if request.method == "POST":
        return _review_update(request, advertiser)
    filterset = SitemapFilterSet(request.GET, queryset=ManualFix.objects.none())
    valid = filterset.is_valid()
    filters = filterset.as_filters() if valid else Filters()
    staff = is_staff_reviewer(request.user)
    data = sitemap_page(
        advertiser=advertiser, filters=filters, page=request.GET.get("page", 1), size=_page_size(request), staff=staff
    )
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "sitemaps/review.html",
        {
            "advertiser": advertiser,
            "data": data,
            "rows_html": vehicle_rows_html(data.rows, staff=staff) if valid else "",
            "filters": filters,
            "filter_errors": filterset.errors,
            "query": query.urlencode(),
            "image_types": ImageType.values,
            "colors": Color.values,
            "staff": staff,
        },
        status=200 if valid else 400,
    )


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _review_update(request: HttpRequest, advertiser) -> HttpResponse:
    changes: list[FixChange] = []
    for key, value in request.POST.items():
        match = FIELD.match(key)
        if not match:
            continue
        prefix, vi_id = match.groups()
        shown = request.POST.get(f"shown-{key}")
        if shown is not None and value == shown:
            continue  # unchanged dropdown: saves nothing
        changes.append(
            FixChange(
                vehicle_image_id=int(vi_id),
                attribute=ATTRIBUTE_OF[prefix],
                value=value,
                shown=shown,
                scope=request.POST.get(f"scope-{vi_id}") or None,
            )
        )
    try:
        made = fixes_apply(user=request.user, advertiser=advertiser, changes=changes) if changes else []
    except ApplicationError as exc:
        # The page's script saves with fetch and shows the refusal; a plain form post gets the usual pages
        # (core.errors.ApplicationErrorMiddleware: 404, 403, or 400 with the message).
        if _wants_json(request):
            return JsonResponse(error_body(code=exc.code, message=exc.message, **exc.extra), status=exc.status)
        raise
    text = f"Saved {len(made)} change{'s' if len(made) != 1 else ''}." if made else "Nothing changed."
    (messages.success if made else messages.info)(request, text)
    if _wants_json(request):
        # The script reloads the page it is on (filters, page and scroll kept) and shows the message.
        return JsonResponse({"saved": len(made), "message": text})
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}) or not target.startswith(
        f"/sitemaps/{advertiser.slug}/"
    ):
        target = f"/sitemaps/{advertiser.slug}/"
    if made:
        target += f"#vehicle-{made[0].vehicle_image.vehicle_id}"  # back where the work was, without JavaScript
    return redirect(target)


@require_POST
@sitemap_user
def relaunch(request: HttpRequest, slug: str) -> HttpResponse:
    advertiser = advertiser_get_visible(user=request.user, slug=slug)
    scrape = classification_relaunch(advertiser=advertiser, user=request.user)
    messages.success(request, f"Classification relaunched for {scrape.total} pictures.")
    return redirect("sitemaps:review", slug=advertiser.slug)


@require_GET
@sitemap_user
def history(request: HttpRequest, slug: str) -> HttpResponse:
    advertiser = advertiser_get_visible(user=request.user, slug=slug)
    filterset = FixHistoryFilterSet(
        request.GET, queryset=fixes_history(advertisers=advertisers_visible(user=request.user).filter(id=advertiser.id))
    )
    if not filterset.is_valid():
        if request.GET.get("format") == "csv":
            return HttpResponseBadRequest(_errors_text(filterset.errors), content_type="text/plain; charset=utf-8")
        return render(
            request,
            "sitemaps/history.html",
            {"advertiser": advertiser, "page": None, "filter": filterset, "params": request.GET, "query": ""},
            status=400,
        )
    fixes = filterset.qs
    if request.GET.get("format") == "csv":
        return _history_csv(fixes, advertiser.slug)
    page = Paginator(fixes, 50).get_page(request.GET.get("page", 1))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "sitemaps/history.html",
        {
            "advertiser": advertiser,
            "page": page,
            "filter": filterset,
            "query": query.urlencode(),
            "params": request.GET,
        },
    )


def _errors_text(errors) -> str:
    return "; ".join(f"{name}: {' '.join(messages_)}" for name, messages_ in errors.items())


def _spreadsheet_safe(text: str) -> str:
    """Advertisers post their own external ids and URLs; a cell a spreadsheet would run as a formula is
    prefixed with an apostrophe (OWASP's CSV-injection advice), every other cell is left as given."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _history_csv(fixes, slug: str) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{slug}-fixes.csv"'
    writer = csv.writer(response)
    writer.writerow(
        [
            "when",
            "advertiser",
            "external_id",
            "position",
            "url",
            "attribute",
            "old",
            "new",
            "scope",
            "user",
            "carried_from",
        ]
    )
    for fix in fixes.iterator(chunk_size=2000):
        vehicle_image = fix.vehicle_image
        writer.writerow(
            [
                fix.created_at.isoformat(),
                fix.advertiser.slug,
                _spreadsheet_safe(vehicle_image.vehicle.external_id),
                vehicle_image.position + 1,  # 1-based, as the page shows it
                _spreadsheet_safe(fix.url),
                fix.attribute,
                fix.old_value,
                fix.new_value,
                fix.scope,
                fix.user.username if fix.user else "",
                fix.carried_from_id or "",
            ]
        )
    return response


DEMO_PICTURE = re.compile(r"^(dealer|stock|placeholder)-([a-z]+)-(\d{1,6})\.jpg$")


@login_not_required
@require_GET
@cache_control(max_age=86400, public=True)
def demo_picture(request: HttpRequest, name: str) -> HttpResponse:
    """The demo's inventory pictures, generated deterministically so the demo needs no network.

    Only where the demo can fetch them, i.e. with loopback fetching on (never in production, check core.E001):
    elsewhere this login-exempt view would let anyone make the server generate pictures for nothing.
    """
    from classification.fetch import allow_list
    from sitemaps.demo import picture_bytes_for

    match = DEMO_PICTURE.match(name)
    if not allow_list().allows_loopback() or not match:
        raise Http404("no such demo picture")
    kind, color, seed = match.groups()
    data = picture_bytes_for(kind=kind, color=color, seed=int(seed))
    if data is None:
        raise Http404("no such demo picture")
    response = HttpResponse(data, content_type="image/jpeg")
    response["ETag"] = f'"{name}"'
    return response
