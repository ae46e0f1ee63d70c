"""Admin for datasets: exports, evaluations and parameter searches, shown read-only."""

from django.contrib import admin

from datasets.models import DatasetExport, Evaluation, ParameterSearch


class _JobAdmin(admin.ModelAdmin):
    """Dataset jobs are created and run from /datasets/ and /models/; the admin only shows them."""

    list_filter = ("status",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(DatasetExport)
class DatasetExportAdmin(_JobAdmin):
    list_display = ("id", "attribute", "status", "progress", "rows", "created_by", "created_at", "finished_at")
    list_filter = ("attribute", "status")


@admin.register(Evaluation)
class EvaluationAdmin(_JobAdmin):
    list_display = ("id", "export", "model_version", "status", "progress", "finished_at")


@admin.register(ParameterSearch)
class ParameterSearchAdmin(_JobAdmin):
    list_display = ("id", "export", "settings_count", "keep", "status", "progress", "finished_at")
