"""Admin site branding."""

from django.contrib import admin

admin.site.site_header = "Spotcheck administration"
admin.site.site_title = "Spotcheck admin"
