"""Demo data: "Demo Motors", an inventory whose pictures the demo serves itself, queued for classification,
with a few pictures known at once and fixed by the demo reviewer and advertiser user (so history shows)."""

import random
from functools import lru_cache

from django.conf import settings
from django.db import transaction

from classification.vocabulary import Attribute, Color, ImageType
from sitemaps.fixes import FixChange, fixes_apply
from sitemaps.ingest import InventoryVehicle, advertiser_ensure, scrape_ingest
from sitemaps.models import VehicleImage
from sitemaps.selectors import sitemap_values

SLUG = "demo-motors"
KINDS = ("dealer", "stock", "placeholder")
# A "photo coming soon" card reused across many vehicles: the reused-picture rule makes it Placeholder.
SHARED_PLACEHOLDER = ("placeholder", "grey", 1)
MAKES = ("Aster", "Borealis", "Cinder", "Dune", "Ember", "Fjord", "Granite", "Harbor")


@lru_cache(maxsize=256)
def picture_bytes_for(*, kind: str, color: str, seed: int) -> bytes | None:
    """The JPEG the demo serves at /sitemaps/demo-pictures/<kind>-<color>-<seed>.jpg (None: no such picture)."""
    from classification.synthetic import picture_bytes

    named = {c.lower(): c for c in Color.values}.get(color)
    if kind not in KINDS or named is None:
        return None
    return picture_bytes(kind=kind, color=named, width=800, height=600, seed=seed)


def picture_url(kind: str, color: str, seed: int) -> str:
    return f"{settings.SPOTCHECK_DEMO_BASE_URL.rstrip('/')}/sitemaps/demo-pictures/{kind}-{color}-{seed}.jpg"


def inventory(*, vehicles: int = 30) -> list[InventoryVehicle]:
    """A deterministic inventory: mostly dealer photos, some stock renders, a shared placeholder card."""
    rng = random.Random(2024)
    colors = [c.lower() for c in Color.values]
    out = []
    for index in range(vehicles):
        color = colors[index % len(colors)]
        count = rng.randint(3, 6)
        pictures = []
        for position in range(count):
            seed = index * 10 + position
            if index % 5 == 4 and position == count - 1:
                pictures.append(picture_url(*SHARED_PLACEHOLDER))
            elif position == 0 and index % 4 == 1:
                pictures.append(picture_url("stock", color, seed))
            else:
                pictures.append(picture_url("dealer", color, seed))
        out.append(
            InventoryVehicle(
                external_id=f"DM-{1000 + index}",
                title=f"{rng.choice(MAKES)} {rng.choice(('Sedan', 'Estate', 'Coupé', 'SUV'))} {2015 + index % 9}",
                # Some listings give their colour: then the classifier's colour is not applied (seed 002).
                color=color.capitalize() if index % 6 == 0 else "",
                images=pictures,
            )
        )
    return out


TYPE_OF_KIND = {"dealer": ImageType.DEALER, "stock": ImageType.STOCK, "placeholder": ImageType.PLACEHOLDER}


def _demo_fixes(*, advertiser, pictures: list[VehicleImage], truth: dict) -> tuple[list[FixChange], list[FixChange]]:
    """Fixes for the demo (reviewer's, advertiser user's). The reviewer corrects what the classifier got wrong
    (the pictures are generated, so the truth is known), else retouches colours; the advertiser user calls a
    stock render "Dealer", seed 002's documented disagreement, which applies to their sitemap only."""
    current = sitemap_values(advertiser=advertiser, vehicle_images=pictures)
    corrections = [
        FixChange(vi.id, attribute, truth[vi.id][attribute])
        for vi in pictures
        for attribute in (Attribute.IMAGE_TYPE, Attribute.COLOR)
        if not (attribute == Attribute.COLOR and vi.vehicle.color)  # the scrape's colour already rules
        and current[vi.id][attribute].value != truth[vi.id][attribute]
    ]
    retouches = [
        FixChange(
            vi.id, Attribute.COLOR, Color.GREY if current[vi.id][Attribute.COLOR].value != Color.GREY else Color.BLACK
        )
        for vi in pictures
        if truth[vi.id][Attribute.IMAGE_TYPE] == ImageType.DEALER
    ]
    advertiser_fixes = [
        FixChange(vi.id, Attribute.IMAGE_TYPE, ImageType.DEALER)
        for vi in pictures
        if current[vi.id][Attribute.IMAGE_TYPE].value == ImageType.STOCK
    ][:1]
    taken = {c.vehicle_image_id for c in advertiser_fixes}
    reviewer_fixes: list[FixChange] = []
    for change in corrections + retouches:
        if change.vehicle_image_id not in taken:
            reviewer_fixes.append(change)
            taken.add(change.vehicle_image_id)
    return reviewer_fixes[:2], advertiser_fixes


def seed(*, users: dict, stdout) -> None:
    """Idempotent: does nothing when Demo Motors already has an inventory."""
    from classification.services import image_from_bytes
    from core.roles import Role

    advertiser = advertiser_ensure(slug=SLUG, name="Demo Motors")
    advertiser.members.add(users[Role.ADVERTISER])
    if advertiser.scrapes.exists():
        stdout.write("sitemaps: Demo Motors already seeded")
        return
    with transaction.atomic():
        scrape = scrape_ingest(advertiser=advertiser, vehicles=inventory(), user=users[Role.REVIEWER])
        # A few pictures are known at once, so the page shows fixes and history before the worker runs.
        known = list(
            VehicleImage.objects.filter(vehicle__advertiser=advertiser, position=0)
            .select_related("vehicle")
            .order_by("vehicle__external_id")[:8]
        )
        truth = {}
        for vi in known:
            kind, color, seed_ = vi.url.rsplit("/", 1)[1].removesuffix(".jpg").split("-")
            vi.image = image_from_bytes(data=picture_bytes_for(kind=kind, color=color, seed=int(seed_)), url=vi.url)
            vi.save(update_fields=["image"])
            truth[vi.id] = {Attribute.IMAGE_TYPE: TYPE_OF_KIND[kind], Attribute.COLOR: color.capitalize()}
        reviewer_fixes, advertiser_fixes = _demo_fixes(advertiser=advertiser, pictures=known, truth=truth)
        fixes_apply(user=users[Role.REVIEWER], advertiser=advertiser, changes=reviewer_fixes)
        fixes_apply(user=users[Role.ADVERTISER], advertiser=advertiser, changes=advertiser_fixes)
    stdout.write(
        f"sitemaps: Demo Motors, {scrape.vehicles} vehicles, {scrape.total} pictures queued for classification"
    )
