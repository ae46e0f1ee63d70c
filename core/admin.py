"""Admin site branding, and the read-only admin for rows only services may write."""

from django.contrib import admin

admin.site.site_header = "Spotcheck administration"
admin.site.site_title = "Spotcheck admin"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that only services write, keeping invariants the admin's forms would skip: view them, nothing else."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
