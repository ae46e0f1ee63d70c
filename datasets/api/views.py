"""API v1 for dataset exports (admins only; anyone else gets 404): request one, follow it, download it."""

from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from classification.models import GroundTruth
from classification.vocabulary import Attribute
from core import permissions
from core.jobs import JobStatus
from datasets.export import (
    DEFAULT_PHASH_THRESHOLD,
    SOURCE_PRECEDENCE,
    ExportError,
    export_params_build,
    file_response,
)
from datasets.models import DatasetExport
from datasets.services import export_request

# Dataset routes do not exist for anyone but admins: authenticated non-admins get 404, not 403.
AdminOr404 = permissions.api_requires(*permissions.ADMIN, hidden=True)


class ExportRequestSerializer(serializers.Serializer):
    attribute = serializers.ChoiceField(choices=Attribute.choices)
    sources = serializers.ListField(
        child=serializers.ChoiceField(choices=GroundTruth.Source.choices), required=False, allow_empty=False
    )
    since = serializers.DateTimeField(required=False, allow_null=True, help_text="only ground truth recorded after")
    since_last_export = serializers.BooleanField(default=False)
    min_width = serializers.IntegerField(default=128, min_value=0)
    min_height = serializers.IntegerField(default=128, min_value=0)
    classes = serializers.ListField(child=serializers.CharField(), required=False)
    test_fraction = serializers.FloatField(default=0.2, min_value=0.0, max_value=1.0)
    seed = serializers.IntegerField(default=0)
    phash_threshold = serializers.IntegerField(default=DEFAULT_PHASH_THRESHOLD, min_value=0)
    group_by_advertiser = serializers.BooleanField(default=False)
    cap_per_class = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    include_conflicting = serializers.BooleanField(default=False)
    manifest_only = serializers.BooleanField(default=False)

    def validate(self, attrs):
        data = dict(attrs)
        manifest_only = data.pop("manifest_only")
        data.setdefault("sources", list(SOURCE_PRECEDENCE))
        try:
            params = export_params_build(**data)
        except ExportError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return {"params": params, "manifest_only": manifest_only}


class ExportSerializer(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()
    manifest_url = serializers.SerializerMethodField()

    class Meta:
        model = DatasetExport
        fields = [
            "id",
            "attribute",
            "status",
            "progress",
            "manifest_only",
            "params",
            "snapshot_at",
            "rows",
            "counts",
            "summary",
            "diff",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "download_url",
            "manifest_url",
        ]
        read_only_fields = fields

    def _url(self, obj, name) -> str | None:
        if obj.status != "done":
            return None
        request = self.context.get("request")
        path = reverse(name, args=[obj.pk])
        return request.build_absolute_uri(path) if request else path

    def get_download_url(self, obj) -> str | None:
        """Admin-only; answers with the file, or a redirect to a short-lived presigned URL on S3."""
        return self._url(obj, "api-export-download")

    def get_manifest_url(self, obj) -> str | None:
        return self._url(obj, "api-export-manifest")


class ExportListCreateView(generics.ListAPIView):
    """GET the exports, newest first; POST parameters to request one (202, built in the background)."""

    permission_classes = [AdminOr404]
    serializer_class = ExportSerializer
    queryset = DatasetExport.objects.all()

    @extend_schema(request=ExportRequestSerializer, responses={202: ExportSerializer})
    def post(self, request):
        incoming = ExportRequestSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        export = export_request(user=request.user, **incoming.validated_data)
        body = ExportSerializer(export, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": f"{export.pk}/"})


class ExportDetailView(generics.RetrieveAPIView):
    permission_classes = [AdminOr404]
    serializer_class = ExportSerializer
    queryset = DatasetExport.objects.all()


class ExportDownloadView(APIView):
    """The export's file (zip, or CSV when manifest-only): a redirect to a short-lived presigned URL on S3,
    the bytes streamed otherwise. ``manifest=True`` serves the manifest alone."""

    permission_classes = [AdminOr404]
    manifest = False

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, 302: None})
    def get(self, request, pk: int):
        export = get_object_or_404(DatasetExport, pk=pk, status=JobStatus.DONE)
        return file_response(export=export, manifest=self.manifest)
