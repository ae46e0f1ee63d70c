"""Receiving an advertiser's inventory: validate the payload, write vehicles and pictures in bulk, queue
their classification. 10,000 vehicles x 12 pictures take a few bulk statements, never a query per row."""

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from classification.vocabulary import Attribute, normalize
from core.errors import ApplicationError
from core.outbox import enqueue_on_commit
from sitemaps.models import Advertiser, Scrape, Vehicle, VehicleImage

BATCH = 2000
# New pictures in one inventory from which the tables are analyzed at once on PostgreSQL.
ANALYZE_AFTER_NEW_PICTURES = 10_000
MAX_URL_LENGTH = 2000
MAX_TITLE_LENGTH = 300  # Vehicle.title


class InventoryInvalid(ApplicationError):
    """The payload is refused; ``errors`` (answered as ``vehicles``) says which vehicle and why."""

    def __init__(self, errors: list[dict]):
        self.errors = errors
        first = errors[0]
        super().__init__(
            f"vehicle {first['index']} ({first.get('external_id') or '?'}): {first['message']}",
            extra={"vehicles": errors},
        )


@dataclass(frozen=True)
class InventoryVehicle:
    external_id: str
    title: str
    color: str  # "" when the scrape gave none
    images: list[str]


def _url_problem(url) -> str | None:
    if not isinstance(url, str) or not url:
        return "an image URL must be a non-empty string"
    if len(url) > MAX_URL_LENGTH:
        return f"an image URL is longer than {MAX_URL_LENGTH} characters"
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"{url[:80]!r} is not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url[:80]!r} is not an http(s) URL"
    return None


def inventory_parse(*, payload) -> list[InventoryVehicle]:
    """Validate a scrape payload ``{"vehicles": [...]}``; raise InventoryInvalid listing every bad vehicle."""
    if not isinstance(payload, dict) or not isinstance(payload.get("vehicles"), list):
        raise InventoryInvalid([{"index": None, "message": 'expected {"vehicles": [...]}'}])
    raw = payload["vehicles"]
    max_vehicles = settings.SPOTCHECK_SITEMAP_MAX_VEHICLES
    max_images = settings.SPOTCHECK_SITEMAP_MAX_IMAGES
    if len(raw) > max_vehicles:
        raise InventoryInvalid([{"index": None, "message": f"{len(raw)} vehicles; at most {max_vehicles}"}])
    errors: list[dict] = []
    parsed: list[InventoryVehicle] = []
    seen: set[str] = set()

    def fail(index: int, external_id, message: str) -> None:
        if len(errors) < 50:  # enough to act on; a broken feed should not produce a 10 MB error
            errors.append({"index": index, "external_id": external_id, "message": message})

    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            fail(index, None, "a vehicle must be an object")
            continue
        external_id = item.get("external_id")
        if not isinstance(external_id, str | int) or isinstance(external_id, bool) or not str(external_id).strip():
            fail(index, None, "external_id is required")
            continue
        external_id = str(external_id).strip()
        if len(external_id) > 100:
            fail(index, external_id[:100], "external_id is longer than 100 characters")
            continue
        if external_id in seen:
            fail(index, external_id, "duplicate external_id in this scrape")
            continue
        seen.add(external_id)
        title = item.get("title") or ""
        if not isinstance(title, str):
            fail(index, external_id, "title must be a string")
            continue
        if len(title) > MAX_TITLE_LENGTH:
            fail(index, external_id, f"title is longer than {MAX_TITLE_LENGTH} characters")
            continue
        color = item.get("color")
        if color in (None, ""):
            color = ""
        elif not isinstance(color, str) or normalize(Attribute.COLOR, color) is None:
            fail(index, external_id, f"unknown colour {color!r}")
            continue
        else:
            color = normalize(Attribute.COLOR, color)
        images = item.get("images", [])
        if not isinstance(images, list):
            fail(index, external_id, "images must be a list of URLs")
            continue
        if len(images) > max_images:
            fail(index, external_id, f"{len(images)} images; at most {max_images} per vehicle")
            continue
        problem = next((p for p in map(_url_problem, images) if p), None)
        if problem:
            fail(index, external_id, problem)
            continue
        parsed.append(InventoryVehicle(external_id, title, color, images))
    if errors:
        raise InventoryInvalid(errors)
    return parsed


def advertiser_ensure(*, slug: str, name: str = "") -> Advertiser:
    """The advertiser named ``slug``, created when a scraper posts its first inventory."""
    advertiser, _ = Advertiser.objects.get_or_create(slug=slug, defaults={"name": name or slug})
    return advertiser


@transaction.atomic
def scrape_ingest(
    *, advertiser: Advertiser, vehicles: list[InventoryVehicle], user: AbstractBaseUser | None = None
) -> Scrape:
    """Write an inventory and queue its classification after commit.

    Vehicles missing from it become inactive (never deleted); a picture whose URL changed loses its old
    picture until classified again (and is marked for fix carry-over); gallery positions beyond the new
    length are hidden, not deleted, because fixes reference them.
    """
    now = timezone.now()
    scrape = Scrape.objects.create(
        advertiser=advertiser,
        kind=Scrape.Kind.INVENTORY,
        vehicles=len(vehicles),
        triggered_by=user if user is not None and user.is_authenticated else None,
        created_at=now,
    )
    existing = {
        v["external_id"]: v
        for v in Vehicle.objects.filter(advertiser=advertiser).values("id", "external_id", "title", "color", "active")
    }
    incoming = {v.external_id: v for v in vehicles}

    new_vehicles = [
        Vehicle(advertiser=advertiser, external_id=v.external_id, title=v.title, color=v.color, created_at=now)
        for v in vehicles
        if v.external_id not in existing
    ]
    Vehicle.objects.bulk_create(new_vehicles, batch_size=BATCH)
    changed = [
        Vehicle(id=row["id"], title=incoming[ext].title, color=incoming[ext].color, active=True)
        for ext, row in existing.items()
        if ext in incoming
        and (row["title"], row["color"], row["active"]) != (incoming[ext].title, incoming[ext].color, True)
    ]
    Vehicle.objects.bulk_update(changed, ["title", "color", "active"], batch_size=500)
    gone = [row["id"] for ext, row in existing.items() if ext not in incoming and row["active"]]
    for start in range(0, len(gone), 500):
        Vehicle.objects.filter(id__in=gone[start : start + 500]).update(active=False)

    vehicle_ids = {v.external_id: v.id for v in new_vehicles} | {ext: row["id"] for ext, row in existing.items()}
    current: dict[tuple[int, int], tuple[int, str, bool]] = {}
    if existing:
        for row in VehicleImage.objects.filter(vehicle__advertiser=advertiser).values_list(
            "id", "vehicle_id", "position", "url", "active"
        ):
            current[(row[1], row[2])] = (row[0], row[3], row[4])

    to_create: list[VehicleImage] = []
    url_changed: list[VehicleImage] = []
    reactivated: list[int] = []
    hidden: list[int] = []
    for vehicle in vehicles:
        vehicle_id = vehicle_ids[vehicle.external_id]
        for position, url in enumerate(vehicle.images):
            known = current.pop((vehicle_id, position), None)
            if known is None:
                to_create.append(
                    VehicleImage(vehicle_id=vehicle_id, position=position, url=url, scrape=scrape, url_changed=False)
                )
            elif known[1] != url:
                url_changed.append(
                    VehicleImage(id=known[0], url=url, image=None, active=True, url_changed=True, error="")
                )
            elif not known[2]:
                reactivated.append(known[0])
    # What is left in ``current`` is a position the new gallery no longer has (or a vehicle that went away).
    hidden = [row_id for row_id, _url, active in current.values() if active]
    VehicleImage.objects.bulk_create(to_create, batch_size=BATCH)
    VehicleImage.objects.bulk_update(url_changed, ["url", "image", "active", "url_changed", "error"], batch_size=500)
    for ids, active in ((reactivated, True), (hidden, False)):
        for start in range(0, len(ids), 500):
            VehicleImage.objects.filter(id__in=ids[start : start + 500]).update(active=active)
    if len(to_create) >= ANALYZE_AFTER_NEW_PICTURES and connection.vendor == "postgresql":
        # A first inventory can multiply these tables; until autovacuum analyzes them PostgreSQL plans the
        # review page's filters for empty tables (a filtered page took 57 s once in bench/sitemap.py).
        transaction.on_commit(_tables_analyze)
    return _scrape_queue(scrape=scrape)


def _tables_analyze() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Vehicle._meta.db_table}, {VehicleImage._meta.db_table}")


def _scrape_queue(*, scrape: Scrape) -> Scrape:
    """Put every visible picture of the advertiser under ``scrape`` as pending and classify it after commit."""
    from sitemaps.tasks import scrape_classify

    # A newer run takes over the pictures of an unfinished one, which could then never complete.
    Scrape.objects.filter(
        advertiser_id=scrape.advertiser_id, status__in=[Scrape.Status.QUEUED, Scrape.Status.RUNNING]
    ).exclude(id=scrape.id).update(status=Scrape.Status.FAILED, finished_at=timezone.now())
    # vehicle_id IN (the advertiser's vehicles), not a join: Django turns an UPDATE over a join into
    # "id IN (SELECT … FROM vehicleimage JOIN vehicle)", which PostgreSQL, before the tables are analyzed,
    # plans as a nested loop over both copies of the table: minutes for a few thousand pictures.
    vehicles = Vehicle.objects.filter(advertiser_id=scrape.advertiser_id, active=True).values("id")
    total = VehicleImage.objects.filter(vehicle_id__in=vehicles, active=True).update(
        scrape=scrape, status=VehicleImage.Status.PENDING
    )
    scrape.total = total
    scrape.save(update_fields=["total"])
    enqueue_on_commit(scrape_classify, scrape.id)
    return scrape


@transaction.atomic
def classification_relaunch(*, advertiser: Advertiser, user: AbstractBaseUser | None = None) -> Scrape:
    """Classify the advertiser's current inventory again (seed 002: "relaunch the scrape")."""
    scrape = Scrape.objects.create(
        advertiser=advertiser,
        kind=Scrape.Kind.RELAUNCH,
        vehicles=Vehicle.objects.filter(advertiser=advertiser, active=True).count(),
        triggered_by=user if user is not None and user.is_authenticated else None,
    )
    return _scrape_queue(scrape=scrape)
