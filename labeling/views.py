"""HTML pages of the labeling app: campaign list, the labeling screen, conflicts, stats, export, fill."""

import csv

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_POST

from core import permissions
from core.errors import refusal_as_message
from core.roles import is_admin, is_staff_reviewer
from labeling import services
from labeling.api.serializers import choices_payload
from labeling.charts import quality_chart_svg
from labeling.fill import FillError, advertiser_fill_available
from labeling.forms import FillForm
from labeling.guidelines import guidelines_html
from labeling.models import Campaign, Item, LabelerStanding
from labeling.selectors import (
    campaigns_with_progress,
    conflicts_pending,
    labeler_quality,
    progress_percent,
    quality_by_week,
    votes_for_export,
    with_work_left_for,
)

GUIDELINE_EXAMPLES_PER_LABEL = 2
GUIDELINE_EXAMPLES_SCAN = 200


@permissions.page_requires(*permissions.LABELING)
def campaign_list(request):
    campaigns = list(with_work_left_for(campaigns_with_progress(active_only=True), user_id=request.user.pk))
    for campaign in campaigns:
        campaign.percent = progress_percent(campaign)
    return render(request, "labeling/campaign_list.html", {"campaigns": campaigns, "can_admin": is_admin(request.user)})


@ensure_csrf_cookie  # the page's script posts votes with the CSRF cookie
@permissions.page_requires(*permissions.LABELING)
def label(request, pk: int):
    campaign = get_object_or_404(Campaign, pk=pk, active=True)
    choices = choices_payload(campaign)
    # Example pictures for the guidelines: a few items per answer whose label the crowd (or an adjudicator)
    # settled, one query. Never gold items: showing their answers would let labelers score on gold by memory.
    names = dict(campaign.choice_labels())
    per_label: dict[str, list[str]] = {}
    settled = (
        Item.objects.filter(campaign=campaign, is_gold=False, status__in=[Item.Status.DECIDED, Item.Status.ADJUDICATED])
        .select_related("image")
        .order_by("id")
    )
    for item in settled[:GUIDELINE_EXAMPLES_SCAN]:
        urls = per_label.setdefault(item.label, [])
        if item.image.thumbnail and len(urls) < GUIDELINE_EXAMPLES_PER_LABEL:
            urls.append(item.image.thumbnail.url)
    examples = [(names[value], url) for value in names for url in per_label.get(value, [])]
    progress = campaigns_with_progress(active_only=False).get(pk=campaign.pk)
    # The end screen's way on: the first other active campaign where this labeler still has pictures.
    others = with_work_left_for(Campaign.objects.filter(active=True).exclude(pk=campaign.pk), user_id=request.user.pk)
    next_campaign = others.filter(n_left_for_me__gt=0).order_by("-created_at").first()
    return render(
        request,
        "labeling/label.html",
        {
            "campaign": campaign,
            "choices": [_button(c) for c in choices],
            "two_choices": len(campaign.choices) == 2,
            "guidelines": guidelines_html(campaign.guidelines),
            "examples": examples,
            "progress": progress,
            "percent": progress_percent(progress),
            "next_campaign": next_campaign,
            "config": {
                "campaign": campaign.pk,
                "user": request.user.pk,
                "serviceWorkerUrl": reverse("labeling:service-worker"),
                "scope": reverse("labeling:campaigns"),
                "choices": choices,
                "nextUrl": reverse("api-campaign-next", args=[campaign.pk]),
                "votesUrl": reverse("api-votes"),
                # DELETE here with the item id in place of 0 gives a skipped item's lease back.
                "leaseUrl": reverse("api-item-lease", args=[0]),
                "swipe": len(campaign.choices) == 2,
            },
        },
    )


def _button(choice: dict) -> dict:
    """A choice as a big button: the short name, and the explanation in brackets as a smaller hint."""
    short, _, hint = choice["label"].partition(" (")
    return {**choice, "short": short, "hint": hint.rstrip(")")}


@permissions.page_requires(*permissions.STAFF)
def conflicts(request):
    page = Paginator(conflicts_pending(), 20).get_page(request.GET.get("page"))
    for item in page:
        total = max(item.vote_count, 1)
        item.bars = [
            {
                "label": value,
                "name": name,
                "count": item.counts.get(value, 0),
                "percent": round(100 * item.counts.get(value, 0) / total),
            }
            for value, name in item.campaign.choice_labels()
        ]
    return render(request, "labeling/conflicts.html", {"page": page})


def _conflicts_page(request) -> str:
    return f"{reverse('labeling:conflicts')}?page={request.POST.get('page', '1')}"


@require_POST
@permissions.page_requires(*permissions.STAFF)
@refusal_as_message(_conflicts_page)
def adjudicate(request, pk: int):
    item = services.item_adjudicate(item_id=pk, label=request.POST.get("label", ""), user=request.user)
    messages.success(request, f"Item {item.pk} set to {item.label}.")
    return redirect(_conflicts_page(request))


@permissions.page_requires(*permissions.LABELING)
def stats(request):
    quality = labeler_quality()
    mine = next((q for q in quality if q.user_id == request.user.pk), None)
    campaigns = list(campaigns_with_progress(active_only=False))
    for c in campaigns:
        total = max(c.n_items, 1)
        c.segments = [
            (name, css, n, round(100 * n / total, 1))
            for name, css, n in (
                ("decided", "decided", c.n_decided),
                ("adjudicated", "adjudicated", c.n_adjudicated),
                ("conflict", "conflict", c.n_conflict),
                ("open", "open", c.n_open),
            )
        ]
    admin = is_admin(request.user)
    # Reviewers and admins may look at any labeler's weeks (?labeler=<id>); everyone else sees their own.
    chart_user = request.user
    if is_staff_reviewer(request.user) and request.GET.get("labeler", "").isdigit():
        chart_user = next((q for q in quality if q.user_id == int(request.GET["labeler"])), None) or request.user
    chart_user_id = getattr(chart_user, "user_id", None) or chart_user.pk
    chart_name = getattr(chart_user, "username", "")
    weeks = quality_by_week(user_id=chart_user_id)
    flagged_ids = set(LabelerStanding.objects.filter(flagged_at__isnull=False).values_list("pk", flat=True))
    return render(
        request,
        "labeling/stats.html",
        {
            "mine": mine,
            "leaderboard": quality[:10],
            "campaigns": campaigns,
            # Flagged (votes excluded), and those gold already puts below the bar ahead of the next sweep.
            "flagged": [q for q in quality if q.flagged or q.user_id in flagged_ids] if admin else [],
            "show_flags": admin,
            "can_export": is_staff_reviewer(request.user),
            "chart": quality_chart_svg(weeks) if weeks else "",
            "chart_name": chart_name if chart_user_id != request.user.pk else "",
            "weeks": weeks,
        },
    )


class _Echo:
    def write(self, value):
        return value


def votes_csv_response(campaign: Campaign) -> StreamingHttpResponse:
    """The campaign's raw votes as CSV (task,worker,label), streamed: crowd-aggregation libraries read it."""
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(["task", "worker", "label"])
        for row in votes_for_export(campaign=campaign):
            yield writer.writerow(row)

    response = StreamingHttpResponse(rows(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="campaign-{campaign.pk}-votes.csv"'
    return response


@permissions.page_requires(*permissions.STAFF)
def votes_csv(request, pk: int):
    return votes_csv_response(get_object_or_404(Campaign, pk=pk))


@permissions.page_requires(*permissions.ADMIN)
def campaign_fill(request, pk: int):
    campaign = get_object_or_404(Campaign, pk=pk)
    if request.method == "POST":
        form = FillForm(request.POST, request.FILES, campaign=campaign)
        if form.is_valid():
            try:
                message, result = form.run()
            except FillError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, message)
                if result is not None:
                    for name, reason in result.rejected[:20]:
                        messages.warning(request, f"{name}: {reason}")
                return redirect("labeling:fill", pk=campaign.pk)
    else:
        form = FillForm(campaign=campaign)
    campaign_progress = campaigns_with_progress(active_only=False).get(pk=campaign.pk)
    return render(
        request,
        "labeling/fill.html",
        {
            "campaign": campaign_progress,
            "form": form,
            "advertisers_available": advertiser_fill_available(),
        },
    )
