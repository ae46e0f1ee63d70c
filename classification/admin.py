"""Admin for classification: model versions, pictures with their predictions and sources, ground truth."""

from django.contrib import admin
from django.utils.html import format_html

from classification.models import GroundTruth, Image, ImageSource, ModelVersion, Prediction
from core.admin import ReadOnlyAdmin


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """Status is read-only here: promotion (/models/) locks the backend's versions and re-classifies the
    pictures an older version made, which flipping the field by hand would skip."""

    list_display = ("name", "backend", "status", "created_at", "promoted_at")
    list_filter = ("backend", "status")
    search_fields = ("name", "notes")
    readonly_fields = ("status", "promoted_at")


class PredictionInline(admin.TabularInline):
    model = Prediction
    extra = 0
    readonly_fields = ("attribute", "value", "score", "model_version", "reason", "created_at")
    can_delete = False


class ImageSourceInline(admin.TabularInline):
    model = ImageSource
    extra = 0
    fields = ("url", "last_status", "error", "etag", "last_modified", "last_checked_at", "check_count")
    readonly_fields = fields
    can_delete = False
    show_change_link = True


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ("id", "preview", "sha256", "width", "height", "format", "classified_at")
    list_filter = ("format",)
    search_fields = ("sha256",)
    readonly_fields = ("preview", "sha256", "phash", "created_at")
    inlines = [PredictionInline, ImageSourceInline]

    @admin.display(description="picture")
    def preview(self, obj):
        if not obj.thumbnail:
            return "—"
        return format_html('<img src="{}" style="max-height:60px" alt="">', obj.thumbnail.url)


@admin.register(ImageSource)
class ImageSourceAdmin(admin.ModelAdmin):
    list_display = ("url", "image", "last_status", "error", "last_checked_at", "check_count")
    list_filter = ("error", "last_status")
    search_fields = ("url",)
    raw_id_fields = ("image",)


@admin.register(GroundTruth)
class GroundTruthAdmin(ReadOnlyAdmin):
    """Append-only: rows are created by services, never added or edited here (a fix added here would skip the
    vocabulary check, the sitemap history and the cache push, so the cache and the pages would disagree)."""

    list_display = ("image", "attribute", "value", "source", "advertiser", "created_by", "created_at")
    list_filter = ("attribute", "source")
    search_fields = ("advertiser", "reference", "value")
    raw_id_fields = ("image", "created_by")
