"""Sitemaps app configuration. The label differs from django.contrib.sitemaps' "sitemaps"."""

from django.apps import AppConfig


class SitemapsConfig(AppConfig):
    name = "sitemaps"
    label = "advertiser_sitemaps"
    verbose_name = "Advertiser sitemaps"
