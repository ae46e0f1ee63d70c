"""Admin for advertisers and scrapes; manual-fix history is read-only there (append-only, tested)."""

from django.contrib import admin

from core.admin import ReadOnlyAdmin
from sitemaps.models import Advertiser, FixOutbox, ManualFix, Scrape


@admin.register(Advertiser)
class AdvertiserAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "created_at")
    search_fields = ("slug", "name")
    filter_horizontal = ("members",)


@admin.register(Scrape)
class ScrapeAdmin(admin.ModelAdmin):
    list_display = ("id", "advertiser", "kind", "status", "total", "done", "from_cache", "failed", "created_at")
    list_filter = ("status", "kind")
    readonly_fields = [f.name for f in Scrape._meta.fields]


@admin.register(ManualFix)
class ManualFixAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "advertiser", "attribute", "old_value", "new_value", "scope", "user")
    list_filter = ("attribute", "scope", "advertiser")
    list_select_related = ("advertiser", "user")
    actions = None


@admin.register(FixOutbox)
class FixOutboxAdmin(ReadOnlyAdmin):
    list_display = ("id", "manual_fix_id", "created_at", "attempts", "delivered_at", "last_error")
    list_filter = (("delivered_at", admin.EmptyFieldListFilter),)
