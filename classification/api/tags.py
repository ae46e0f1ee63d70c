"""GET /api/v1/images/?tag=beach: pictures by the labels backends gave them (staff only: pictures of every
advertiser), each with its labels, newest first."""

from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.permissions import BasePermission

from classification.labels import images_tagged
from classification.models import ImageLabel, ModelVersion
from core.roles import is_staff_reviewer


class StaffReviewer(BasePermission):
    message = "Only staff may search every advertiser's pictures."

    def has_permission(self, request, view) -> bool:
        return is_staff_reviewer(request.user)


class TagQuerySerializer(serializers.Serializer):
    tag = serializers.CharField(max_length=100, help_text='A label as a backend names it: "beach", "text", "logo"…')
    min_score = serializers.FloatField(required=False, default=0.0, min_value=0.0, max_value=1.0)
    model = serializers.CharField(required=False, max_length=100, help_text="Only labels of this model version")


class LabelSerializer(serializers.Serializer):
    name = serializers.CharField()
    score = serializers.FloatField()
    model = serializers.CharField(source="model_version.name")


class TaggedImageSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    sha256 = serializers.CharField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    labels = LabelSerializer(many=True, source="sorted_labels")


class TaggedImagesView(ListAPIView):
    permission_classes = [StaffReviewer]
    serializer_class = TaggedImageSerializer

    def get_queryset(self):
        query = TagQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        version = None
        if params.get("model"):
            version = ModelVersion.objects.filter(name=params["model"]).first()
            if version is None:
                raise serializers.ValidationError({"model": f"No model version {params['model']!r}."})
        labels = ImageLabel.objects.select_related("model_version").order_by("-score", "name")
        return (
            images_tagged(tag=params["tag"], min_score=params["min_score"], model_version=version)
            .prefetch_related(Prefetch("labels", queryset=labels, to_attr="sorted_labels"))
            .order_by("-created_at", "-id")
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("tag", str, required=True),
            OpenApiParameter("min_score", float),
            OpenApiParameter("model", str),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
