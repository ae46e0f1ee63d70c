"""API v1 of the sitemaps app: scrapes in, classification progress, the sitemap read API, fixes."""

from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from classification.labels import usage_report
from classification.vocabulary import Attribute
from core import permissions
from core.errors import ApplicationError
from core.roles import is_staff_reviewer
from sitemaps.access import advertiser_get_visible, advertisers_visible
from sitemaps.api.parsers import InventoryJSONParser
from sitemaps.api.serializers import (
    FixesOut,
    FixIn,
    FixOut,
    FixPageOut,
    InventoryIn,
    ScrapeDetailOut,
    ScrapeOut,
    SitemapPageOut,
    VehicleOut,
    errors,
)
from sitemaps.filters import FixHistoryFilterSet, SitemapFilterSet
from sitemaps.fixes import FixChange, fixes_apply
from sitemaps.ingest import advertiser_ensure, classification_relaunch, inventory_parse, scrape_ingest
from sitemaps.models import ManualFix, Scrape, VehicleImage
from sitemaps.selectors import fixes_history, matches, vehicle_rows, vehicles_by_ids

# Users outside the sitemap roles see no sitemap at all: 404, like an advertiser that is not theirs.
SitemapsOr404 = permissions.api_requires(*permissions.SITEMAPS, hidden=True)


def scrape_data(scrape: Scrape, request) -> dict:
    return ScrapeOut(scrape, context={"request": request}).data


def _filter_params(filterset_class) -> list[OpenApiParameter]:
    """Query parameters documented from the FilterSet that validates them."""
    params = []
    for name, f in filterset_class.base_filters.items():
        choices = [str(c[0]) for c in f.extra.get("choices", [])]
        params.append(OpenApiParameter(name, str, description=str(f.label or ""), enum=choices or None))
    return params


def _invalid(filterset) -> None:
    fields = {name: [str(m) for m in msgs] for name, msgs in filterset.errors.items()}
    name, msgs = next(iter(fields.items()))
    raise ApplicationError(f"{name}: {msgs[0]}", extra={"fields": fields})


class ScrapeCreateView(APIView):
    """Receive an advertiser's inventory; classification runs in the workers."""

    parser_classes = [InventoryJSONParser]
    permission_classes = [SitemapsOr404]

    @extend_schema(request=InventoryIn, responses={202: ScrapeOut, **errors(400, 401, 404)})
    def post(self, request, slug: str):
        staff = is_staff_reviewer(request.user)
        # An advertiser user learns nothing about another advertiser's slug, not even from a 400.
        advertiser = None if staff else advertiser_get_visible(user=request.user, slug=slug)
        vehicles = inventory_parse(payload=request.data)
        if advertiser is None:
            # The scraper (a staff token) creates the advertiser with its first valid inventory.
            name = request.data.get("name") or ""
            if not isinstance(name, str) or len(name) > 200:
                raise ApplicationError("name: a string of at most 200 characters")
            advertiser = advertiser_ensure(slug=slug, name=name)
        scrape = scrape_ingest(advertiser=advertiser, vehicles=vehicles, user=request.user)
        return Response(scrape_data(scrape, request), status=status.HTTP_202_ACCEPTED)


class RelaunchView(APIView):
    """Classify the advertiser's current inventory again."""

    permission_classes = [SitemapsOr404]

    @extend_schema(request=None, responses={202: ScrapeOut, **errors(401, 404)})
    def post(self, request, slug: str):
        advertiser = advertiser_get_visible(user=request.user, slug=slug)
        scrape = classification_relaunch(advertiser=advertiser, user=request.user)
        return Response(scrape_data(scrape, request), status=status.HTTP_202_ACCEPTED)


class ScrapeDetailView(APIView):
    """A scrape's status (queued, running, done, failed), counts (total, done, from cache, failed), and its
    classification's usage: pictures sent to each backend and the estimated cost."""

    permission_classes = [SitemapsOr404]

    @extend_schema(responses={200: ScrapeDetailOut, **errors(401, 404)})
    def get(self, request, scrape_id: int):
        scrape = get_object_or_404(
            Scrape.objects.select_related("advertiser"),
            id=scrape_id,
            advertiser__in=advertisers_visible(user=request.user),
        )
        pictures = VehicleImage.objects.filter(scrape_id=scrape.id, image__isnull=False).values("image_id")
        scrape.usage = usage_report(
            image_ids=pictures, since=scrape.started_at or scrape.created_at, until=scrape.finished_at
        ).as_dict()
        return Response(ScrapeDetailOut(scrape, context={"request": request}).data)


class SitemapPagination(PageNumberPagination):
    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_paginated_response_with(self, data, *, pictures: int) -> Response:
        """The usual envelope plus the number of matching pictures on every page (vehicles are counted)."""
        envelope = self.get_paginated_response(data).data
        results = envelope.pop("results")
        return Response({**envelope, "pictures": pictures, "results": results})


class SitemapView(APIView):
    """Paginated vehicles with each picture's effective values (as the review page shows them). A picture filter
    (type, failures, fixed, disagreement) keeps only the matching pictures of each vehicle, as on the page."""

    permission_classes = [SitemapsOr404]

    @extend_schema(
        parameters=[
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int),
            *_filter_params(SitemapFilterSet),
        ],
        responses={200: SitemapPageOut, **errors(400, 401, 404)},
    )
    def get(self, request, slug: str):
        advertiser = advertiser_get_visible(user=request.user, slug=slug)
        filterset = SitemapFilterSet(request.query_params, queryset=ManualFix.objects.none())
        if not filterset.is_valid():
            _invalid(filterset)
        found = matches(advertiser=advertiser, filters=filterset.as_filters())
        paginator = SitemapPagination()
        ids = paginator.paginate_queryset(found.vehicle_ids, request, view=self)
        rows = vehicle_rows(
            advertiser=advertiser,
            vehicles=vehicles_by_ids(list(ids)),
            staff=is_staff_reviewer(request.user),
            picture_ids=found.picture_ids,
        )
        return paginator.get_paginated_response_with(VehicleOut(rows, many=True).data, pictures=found.pictures)


class FixesView(APIView):
    """GET: fix history (filters advertiser, user, attribute, since, until). POST: fix one picture, downloaded or
    not (a picture never downloaded is fixed by its URL and the fix follows it once downloaded)."""

    permission_classes = [SitemapsOr404]

    @extend_schema(
        parameters=[
            OpenApiParameter("advertiser", str),
            OpenApiParameter("page", int),
            *_filter_params(FixHistoryFilterSet),
        ],
        responses={200: FixPageOut, **errors(400, 401, 404)},
    )
    def get(self, request):
        advertisers = advertisers_visible(user=request.user)
        slug = request.query_params.get("advertiser")
        if slug:
            advertisers = advertisers.filter(id=advertiser_get_visible(user=request.user, slug=slug).id)
        filterset = FixHistoryFilterSet(request.query_params, queryset=fixes_history(advertisers=advertisers))
        if not filterset.is_valid():
            _invalid(filterset)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(filterset.qs, request, view=self)
        return paginator.get_paginated_response(FixOut(page, many=True).data)

    @extend_schema(
        request=FixIn,
        responses={
            201: FixesOut,
            200: OpenApiResponse(FixesOut, description="Nothing changed: the value was already in effect"),
            **errors(400, 401, 403, 404),
        },
    )
    def post(self, request):
        payload = FixIn(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        vehicle_image = (
            VehicleImage.objects.filter(
                Q(id=data["vehicle_image"]), vehicle__advertiser__in=advertisers_visible(user=request.user)
            )
            .select_related("vehicle__advertiser")
            .first()
        )
        if vehicle_image is None:
            raise Http404("no such vehicle image")
        changes = [
            FixChange(
                vehicle_image_id=vehicle_image.id, attribute=attribute, value=data[attribute], scope=data.get("scope")
            )
            for attribute in (Attribute.IMAGE_TYPE, Attribute.COLOR)
            if attribute in data
        ]
        made = fixes_apply(user=request.user, advertiser=vehicle_image.vehicle.advertiser, changes=changes)
        fixes = ManualFix.objects.filter(id__in=[f.id for f in made]).select_related(
            "advertiser", "vehicle_image__vehicle", "user"
        )
        return Response(
            {"fixes": FixOut(fixes, many=True).data}, status=status.HTTP_201_CREATED if made else status.HTTP_200_OK
        )
