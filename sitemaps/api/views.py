"""API v1 of the sitemaps app: scrapes in, classification progress, the sitemap read API, fixes."""

from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils.dateparse import parse_date
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from classification.vocabulary import Attribute, is_valid
from core.api import error_response
from core.roles import is_staff_reviewer
from sitemaps.access import advertiser_get_visible, advertisers_visible, may_use_sitemaps
from sitemaps.api.parsers import InventoryJSONParser
from sitemaps.fixes import FixChange, PictureNotClassified, VehicleImageNotFound, fixes_apply
from sitemaps.ingest import InventoryInvalid, advertiser_ensure, classification_relaunch, inventory_parse, scrape_ingest
from sitemaps.models import Advertiser, ManualFix, Scrape, VehicleImage
from sitemaps.selectors import Filters, fixes_history, vehicle_ids_filtered, vehicle_rows, vehicles_by_ids


def _visible_advertiser(request, slug: str) -> Advertiser:
    if not may_use_sitemaps(request.user):
        raise Http404("no sitemap")
    return advertiser_get_visible(user=request.user, slug=slug)


def scrape_data(scrape: Scrape, request) -> dict:
    return {
        "id": scrape.id,
        "url": request.build_absolute_uri(f"/api/v1/scrapes/{scrape.id}/"),
        "advertiser": scrape.advertiser.slug,
        "kind": scrape.kind,
        "status": scrape.status,
        "vehicles": scrape.vehicles,
        "total": scrape.total,
        "done": scrape.done,
        "from_cache": scrape.from_cache,
        "failed": scrape.failed,
        "percent": scrape.percent,
        "created_at": scrape.created_at,
        "started_at": scrape.started_at,
        "finished_at": scrape.finished_at,
    }


class ScrapeCreateView(APIView):
    """Receive an advertiser's inventory; classification runs in the workers."""

    parser_classes = [InventoryJSONParser]

    @extend_schema(request=None, responses={202: None})
    def post(self, request, slug: str):
        if not may_use_sitemaps(request.user):
            raise Http404("no sitemap")
        staff = is_staff_reviewer(request.user)
        # An advertiser user learns nothing about another advertiser's slug, not even from a 400.
        advertiser = None if staff else advertiser_get_visible(user=request.user, slug=slug)
        try:
            vehicles = inventory_parse(payload=request.data)
        except InventoryInvalid as exc:
            return error_response(status_code=400, code="invalid", message=str(exc), vehicles=exc.errors)
        if advertiser is None:
            # The scraper (a staff token) creates the advertiser with its first valid inventory.
            name = request.data.get("name") or ""
            if not isinstance(name, str) or len(name) > 200:
                return error_response(
                    status_code=400, code="invalid", message="name: a string of at most 200 characters"
                )
            advertiser = advertiser_ensure(slug=slug, name=name)
        scrape = scrape_ingest(advertiser=advertiser, vehicles=vehicles, user=request.user)
        return Response(scrape_data(scrape, request), status=status.HTTP_202_ACCEPTED)


class RelaunchView(APIView):
    """Classify the advertiser's current inventory again."""

    @extend_schema(request=None, responses={202: None})
    def post(self, request, slug: str):
        advertiser = _visible_advertiser(request, slug)
        scrape = classification_relaunch(advertiser=advertiser, user=request.user)
        return Response(scrape_data(scrape, request), status=status.HTTP_202_ACCEPTED)


class ScrapeDetailView(APIView):
    """A scrape's status (queued, running, done, failed) and counts (total, done, from cache, failed)."""

    @extend_schema(responses={200: None})
    def get(self, request, scrape_id: int):
        if not may_use_sitemaps(request.user):
            raise Http404("no sitemap")
        scrape = get_object_or_404(
            Scrape.objects.select_related("advertiser"),
            id=scrape_id,
            advertiser__in=advertisers_visible(user=request.user),
        )
        return Response(scrape_data(scrape, request))


class SitemapPagination(PageNumberPagination):
    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100


def image_data(row) -> dict:
    vi = row.vehicle_image
    return {
        "id": vi.id,
        "url": vi.url,
        "position": vi.position,
        "image_type": row.image_type.value,
        "color": row.color.value,
        "image_type_source": row.image_type.source,
        "color_source": row.color.source,
        "ml_image_type": row.image_type.ml_value,
        "ml_color": row.color.ml_value,
        "fixed": row.fixed,
    }


class SitemapView(APIView):
    """Paginated vehicles with each picture's effective values (as the review page shows them)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int),
            OpenApiParameter("q", str, description="external id contains"),
            OpenApiParameter("type", str, description="effective image type"),
            OpenApiParameter("failures", str, description="1: ML failures only"),
            OpenApiParameter("fixed", str, description="1: fixed only"),
        ],
        responses={200: None},
    )
    def get(self, request, slug: str):
        advertiser = _visible_advertiser(request, slug)
        paginator = SitemapPagination()
        ids = paginator.paginate_queryset(
            vehicle_ids_filtered(advertiser=advertiser, filters=Filters.from_query(request.query_params)),
            request,
            view=self,
        )
        rows = vehicle_rows(
            advertiser=advertiser, vehicles=vehicles_by_ids(list(ids)), staff=is_staff_reviewer(request.user)
        )
        data = [
            {
                "external_id": r.vehicle.external_id,
                "title": r.vehicle.title,
                "color": r.vehicle.color or None,
                "hero_image": image_data(r.hero) if r.hero else None,
                "images": [image_data(i) for i in r.images],
            }
            for r in rows
        ]
        return paginator.get_paginated_response(data)


class FixInput(serializers.Serializer):
    vehicle_image = serializers.IntegerField(min_value=1)
    image_type = serializers.CharField(required=False)
    color = serializers.CharField(required=False)

    def validate(self, attrs):
        if "image_type" not in attrs and "color" not in attrs:
            raise serializers.ValidationError("give image_type, color or both")
        for attribute in (Attribute.IMAGE_TYPE, Attribute.COLOR):
            if attribute in attrs and not is_valid(attribute, attrs[attribute]):
                raise serializers.ValidationError({attribute: f"{attrs[attribute]!r} is not a valid {attribute}"})
        return attrs


def fix_data(fix: ManualFix) -> dict:
    return {
        "id": fix.id,
        "advertiser": fix.advertiser.slug,
        "vehicle_image": fix.vehicle_image_id,
        "external_id": fix.vehicle_image.vehicle.external_id,
        "position": fix.vehicle_image.position,
        "image": fix.image_id,
        "url": fix.url,
        "attribute": fix.attribute,
        "old_value": fix.old_value or None,
        "new_value": fix.new_value,
        "scope": fix.scope,
        "user": fix.user.username if fix.user else None,
        "carried_from": fix.carried_from_id,
        "created_at": fix.created_at,
    }


class FixesView(APIView):
    """GET: fix history (filters advertiser, user, attribute, since, until). POST: fix one picture."""

    @extend_schema(
        parameters=[
            OpenApiParameter("advertiser", str),
            OpenApiParameter("user", str),
            OpenApiParameter("attribute", str),
            OpenApiParameter("since", str, description="YYYY-MM-DD"),
            OpenApiParameter("until", str, description="YYYY-MM-DD"),
        ],
        responses={200: None},
    )
    def get(self, request):
        if not may_use_sitemaps(request.user):
            raise Http404("no sitemap")
        advertisers = advertisers_visible(user=request.user)
        slug = request.query_params.get("advertiser")
        if slug:
            advertisers = advertisers.filter(id=advertiser_get_visible(user=request.user, slug=slug).id)
        params = {}
        for name in ("since", "until"):
            raw = request.query_params.get(name)
            if raw:
                try:
                    params[name] = parse_date(raw)
                except ValueError:
                    params[name] = None
                if params[name] is None:
                    return error_response(status_code=400, code="invalid", message=f"{name}: expected YYYY-MM-DD")
        attribute = request.query_params.get("attribute", "")
        if attribute and attribute not in (Attribute.IMAGE_TYPE, Attribute.COLOR):
            return error_response(status_code=400, code="invalid", message="attribute: image_type or color")
        fixes = fixes_history(
            advertisers=advertisers, user=request.query_params.get("user", ""), attribute=attribute, **params
        )
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(fixes, request, view=self)
        return paginator.get_paginated_response([fix_data(f) for f in page])

    @extend_schema(request=FixInput, responses={201: None, 200: None})
    def post(self, request):
        if not may_use_sitemaps(request.user):
            raise Http404("no sitemap")
        payload = FixInput(data=request.data)
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
            FixChange(vehicle_image_id=vehicle_image.id, attribute=attribute, value=data[attribute])
            for attribute in (Attribute.IMAGE_TYPE, Attribute.COLOR)
            if attribute in data
        ]
        try:
            made = fixes_apply(user=request.user, advertiser=vehicle_image.vehicle.advertiser, changes=changes)
        except VehicleImageNotFound:
            raise Http404("no such vehicle image") from None
        except PictureNotClassified as exc:
            return error_response(status_code=409, code="conflict", message=str(exc))
        fixes = ManualFix.objects.filter(id__in=[f.id for f in made]).select_related(
            "advertiser", "vehicle_image__vehicle", "user"
        )
        return Response(
            {"fixes": [fix_data(f) for f in fixes]}, status=status.HTTP_201_CREATED if made else status.HTTP_200_OK
        )
