"""Sitemaps app configuration. The label differs from django.contrib.sitemaps' "sitemaps"."""

from collections.abc import Iterable

from django.apps import AppConfig


def _advertiser_image_ids(slug: str) -> list[int]:
    from sitemaps.models import VehicleImage

    return list(
        VehicleImage.objects.filter(
            vehicle__advertiser__slug=slug, vehicle__active=True, active=True, image__isnull=False
        )
        .values_list("image_id", flat=True)
        .distinct()
    )


def _advertisers_of(image_ids: Iterable[int]) -> dict[int, list[str]]:
    from sitemaps.models import VehicleImage

    found: dict[int, set[str]] = {}
    for image_id, slug in (
        VehicleImage.objects.filter(image_id__in=list(image_ids), active=True)
        .values_list("image_id", "vehicle__advertiser__slug")
        .distinct()
    ):
        found.setdefault(image_id, set()).add(slug)
    return {image_id: sorted(slugs) for image_id, slugs in found.items()}


def _advertiser_choices() -> list[tuple[str, str]]:
    from sitemaps.models import Advertiser

    return list(Advertiser.objects.order_by("name").values_list("slug", "name"))


class SitemapsConfig(AppConfig):
    name = "sitemaps"
    label = "advertiser_sitemaps"
    verbose_name = "Advertiser sitemaps"

    def ready(self) -> None:
        from classification.collections import Collection, collection_register

        collection_register(
            Collection(
                kind="advertiser",
                image_ids=_advertiser_image_ids,
                keys_for=_advertisers_of,
                choices=_advertiser_choices,
            )
        )
