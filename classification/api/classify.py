"""POST /api/v1/classify/: one URL or a batch, classified now (downloads in parallel)."""

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from classification.services import urls_classify
from core.roles import is_staff_reviewer, may_classify_urls


class UrlField(serializers.CharField):
    """A string, not anything that can be turned into one (a number is a mistake worth a 400)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ClassifyInputSerializer(serializers.Serializer):
    url = UrlField(required=False, max_length=4096)
    urls = serializers.ListField(child=UrlField(max_length=4096), required=False, allow_empty=False)
    advertiser = serializers.SlugField(
        required=False, max_length=100, help_text="Resolve values as this advertiser sees them (staff only)."
    )

    def validate_urls(self, value):
        limit = settings.SPOTCHECK_CLASSIFY_MAX_URLS
        if len(value) > limit:
            raise serializers.ValidationError(f"At most {limit} URLs per request; send {len(value)} in several.")
        return value

    def validate(self, attrs):
        if ("url" in attrs) == ("urls" in attrs):
            raise serializers.ValidationError('Send either "url" (one URL) or "urls" (a list of URLs), not both.')
        return attrs


class ClassifyResultSerializer(serializers.Serializer):
    url = serializers.CharField()
    sha256 = serializers.CharField(allow_null=True)
    image_type = serializers.CharField(allow_null=True)
    color = serializers.CharField(allow_null=True)
    scores = serializers.DictField(child=serializers.FloatField(allow_null=True))
    source = serializers.ChoiceField(choices=["ml", "fix", "default"])
    cached = serializers.BooleanField()
    model = serializers.CharField(allow_null=True)
    error = serializers.CharField(allow_null=True, help_text="blocked_address, timeout, too_large, http_404…")


class ClassifyOutputSerializer(serializers.Serializer):
    results = ClassifyResultSerializer(many=True)


class ClassifyView(APIView):
    """Classify pictures by URL. A URL that cannot be fetched is a result with its ``error``, not a failure."""

    @extend_schema(
        request=ClassifyInputSerializer,
        responses={200: ClassifyOutputSerializer},
        description="Staff (reviewers, admins) and service tokens only: the server fetches the URLs.",
        examples=[
            OpenApiExample("One URL", value={"url": "https://cdn.example.com/cars/123/1.jpg"}, request_only=True),
            OpenApiExample("A batch", value={"urls": ["https://cdn.example.com/1.jpg"]}, request_only=True),
        ],
    )
    def post(self, request):
        if not may_classify_urls(request.user):
            raise PermissionDenied("Only staff and service tokens may ask the server to fetch URLs.")
        serializer = ClassifyInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        advertiser = data.get("advertiser")
        if advertiser and not is_staff_reviewer(request.user):
            raise PermissionDenied("Only staff may ask for an advertiser's view.")
        urls = [data["url"]] if "url" in data else data["urls"]
        outcomes = urls_classify(urls=urls, advertiser=advertiser, deadline=settings.SPOTCHECK_CLASSIFY_API_DEADLINE)
        return Response({"results": [o.as_result() for o in outcomes]})
