"""POST /api/v1/classify/: one URL or a batch, classified now: downloads in parallel in the request, new
pictures decoded and classified on the classify queue (``classification.dispatch``); or one picture sent as
a multipart upload, or one object of our bucket named by its ``s3://`` key: hashed, header-checked and
staged in the request, decoded and classified on the classify queue likewise (never in the web process).
Each answer reports the backends the pictures were sent to and the estimated cost."""

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from classification.dispatch import bytes_classify_queued, object_classify_queued, urls_classify_queued
from classification.labels import usage_report
from classification.models import FetchError
from classification.services import ClassifyOutcome
from core.errors import ApplicationError
from core.permissions import CLASSIFY, api_requires
from core.roles import is_staff_reviewer

# A multipart body may carry this much besides the picture (boundaries, headers, the other fields).
MULTIPART_OVERHEAD = 64 * 1024


class UrlField(serializers.CharField):
    """A string, not anything that can be turned into one (a number is a mistake worth a 400)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ClassifyInputSerializer(serializers.Serializer):
    url = UrlField(required=False, max_length=4096)
    urls = serializers.ListField(child=UrlField(max_length=4096), required=False, allow_empty=False)
    key = UrlField(required=False, max_length=1100, help_text="An object of our bucket: s3://BUCKET/KEY")
    advertiser = serializers.SlugField(
        required=False, max_length=100, help_text="Resolve values as this advertiser sees them (staff only)."
    )

    def validate_urls(self, value):
        limit = settings.SPOTCHECK_CLASSIFY_MAX_URLS
        if len(value) > limit:
            raise serializers.ValidationError(f"At most {limit} URLs per request; send {len(value)} in several.")
        return value

    def validate(self, attrs):
        if sum(name in attrs for name in ("url", "urls", "key", "file")) != 1:
            raise serializers.ValidationError(
                'Send either "url" (one URL) or "urls" (a list of URLs), or "key" (s3://…), '
                'or a picture as the multipart field "file"; exactly one of them.'
            )
        return attrs


@extend_schema_field(OpenApiTypes.BINARY)
class PictureField(serializers.FileField):
    """An uploaded picture (documented as binary: the bytes of the multipart part)."""


class ClassifyUploadSerializer(ClassifyInputSerializer):
    file = PictureField(
        required=False, allow_empty_file=False, help_text="The picture itself (JPEG, PNG, WebP or GIF)."
    )


class ClassifyResultSerializer(serializers.Serializer):
    url = serializers.CharField()
    sha256 = serializers.CharField(allow_null=True)
    image_type = serializers.CharField(allow_null=True)
    color = serializers.CharField(allow_null=True)
    banner = serializers.CharField(required=False, help_text="Only when the active model has a banner head")
    position = serializers.CharField(required=False, help_text="Only when the active model has a position head")
    scores = serializers.DictField(child=serializers.FloatField(allow_null=True))
    source = serializers.ChoiceField(choices=["ml", "fix", "default"])
    cached = serializers.BooleanField()
    model = serializers.CharField(allow_null=True)
    error = serializers.CharField(allow_null=True, help_text="blocked_address, timeout, too_large, http_404…")


class UsageSerializer(serializers.Serializer):
    pictures = serializers.DictField(child=serializers.IntegerField(), help_text="backend → pictures sent to it")
    estimated_cost = serializers.FloatField(help_text="price per 1,000 pictures of each backend, summed")


class ClassifyOutputSerializer(serializers.Serializer):
    results = ClassifyResultSerializer(many=True)
    usage = UsageSerializer()


class ClassifyView(APIView):
    """Classify pictures by URL, upload or bucket key. A URL that cannot be fetched is a result with its
    ``error``, not a failure; an upload or key that is not a picture we accept answers 400 (413 when too big);
    one not classified by the deadline is a result with the error ``timeout``, like a URL's."""

    permission_classes = [
        api_requires(*CLASSIFY, message="Only staff and service tokens may ask the server to fetch URLs.")
    ]

    @extend_schema(
        request={"application/json": ClassifyInputSerializer, "multipart/form-data": ClassifyUploadSerializer},
        responses={
            200: ClassifyOutputSerializer,
            400: OpenApiResponse(description="Bad input, or an upload/object that is not a picture we accept."),
            403: OpenApiResponse(description="Not staff or a service token, or a key outside our bucket."),
            404: OpenApiResponse(description="No such object in our bucket."),
            413: OpenApiResponse(description="The upload or object is over SPOTCHECK_FETCH_MAX_BYTES."),
        },
        description="Staff (reviewers, admins) and service tokens only: the server fetches the URLs or reads "
        "the bucket.",
        examples=[
            OpenApiExample("One URL", value={"url": "https://cdn.example.com/cars/123/1.jpg"}, request_only=True),
            OpenApiExample("A batch", value={"urls": ["https://cdn.example.com/1.jpg"]}, request_only=True),
            OpenApiExample("A bucket key", value={"key": "s3://spotcheck-media/uploads/1.jpg"}, request_only=True),
        ],
    )
    def post(self, request):
        cap = settings.SPOTCHECK_FETCH_MAX_BYTES
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > cap + MULTIPART_OVERHEAD:  # refused before the body is read
            raise ApplicationError(f"At most {cap} bytes.", code=FetchError.TOO_LARGE, status=413)
        serializer = ClassifyUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        advertiser = data.get("advertiser")
        if advertiser and not is_staff_reviewer(request.user):
            raise PermissionDenied("Only staff may ask for an advertiser's view.")
        started = timezone.now()
        deadline = settings.SPOTCHECK_CLASSIFY_API_DEADLINE
        if "file" in data or "key" in data:
            outcomes = [self._one(data, advertiser, deadline)]
        else:
            urls = [data["url"]] if "url" in data else data["urls"]
            outcomes = urls_classify_queued(urls=urls, advertiser=advertiser, deadline=deadline)
        usage = usage_report(image_ids=[o.image_id for o in outcomes if o.image_id], since=started)
        return Response({"results": [o.as_result() for o in outcomes], "usage": usage.as_dict()})

    @staticmethod
    def _one(data: dict, advertiser: str | None, deadline: float) -> ClassifyOutcome:
        """An uploaded picture or a bucket object; a refusal raises ApplicationError (the one error shape)."""
        cap = settings.SPOTCHECK_FETCH_MAX_BYTES
        if "file" in data:
            upload = data["file"]
            if upload.size > cap:
                raise ApplicationError(f"At most {cap} bytes.", code=FetchError.TOO_LARGE, status=413)
            name = upload.name or "upload"
            outcome = bytes_classify_queued(data=upload.read(), name=name, advertiser=advertiser, deadline=deadline)
        else:
            outcome = object_classify_queued(uri=data["key"], advertiser=advertiser, deadline=deadline)
        # Not classified in time is no refusal of the picture: it is classified on the queue (asked again, a hit).
        if outcome.error and outcome.error != FetchError.TIMEOUT:
            status = 413 if outcome.error == FetchError.TOO_LARGE else 400
            raise ApplicationError(REFUSALS.get(outcome.error, outcome.error), code=outcome.error, status=status)
        return outcome


REFUSALS = {
    FetchError.NOT_AN_IMAGE: "This is not a picture we read (JPEG, PNG, WebP or GIF).",
    FetchError.BAD_IMAGE: "The picture is damaged or truncated and cannot be decoded.",
    FetchError.TOO_MANY_PIXELS: "The picture has more pixels than SPOTCHECK_MAX_PIXELS allows.",
    FetchError.TOO_LARGE: "The picture is over the byte cap.",
}
