"""Reads of the sitemaps app: the review page (a fixed number of queries whatever the page or the advertiser's
size), effective values as the page shows them, history, and per-advertiser health and "weird result" flags."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import lru_cache

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, NullIf
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from classification.labels import normalize_tag
from classification.models import GroundTruth, ImageLabel, Prediction
from classification.selectors import image_values
from classification.values import Resolved, resolve
from classification.vocabulary import DISPLAY_DEFAULTS, DROPDOWN_DEFAULTS, Attribute, ImageType, choices_for
from sitemaps.models import Advertiser, ManualFix, Scrape, Vehicle, VehicleImage

TYPE = Attribute.IMAGE_TYPE
COLOR = Attribute.COLOR
USEFUL_TYPES = (ImageType.DEALER, ImageType.STOCK)


# --- Effective values as the sitemap shows them ---------------------------------------------------------------


def sitemap_values(*, advertiser: Advertiser, vehicle_images: list[VehicleImage]) -> dict[int, dict[str, Resolved]]:
    """Per vehicle image, the effective image type and colour in this advertiser's sitemap (2 queries).

    classification's precedence (advertiser fix → staff fix → ML → default), plus seed 002's scrape rule: when
    the scrape gave the vehicle a colour, that colour replaces the classifier's (a fix still wins).
    ``vehicle_images`` must have ``vehicle`` loaded.
    """
    resolved = image_values(image_ids={vi.image_id for vi in vehicle_images if vi.image_id}, advertiser=advertiser.slug)
    out: dict[int, dict[str, Resolved]] = {}
    for vi in vehicle_images:
        values = dict(resolved.get(vi.image_id) or {a: resolve(attribute=a, ml_value=None) for a in (TYPE, COLOR)})
        scraped = vi.vehicle.color
        if scraped and not values[COLOR].fixed:
            values[COLOR] = Resolved(scraped, "scrape", values[COLOR].ml_value, values[COLOR].ml_score, None)
        out[vi.id] = values
    return out


# --- Review page --------------------------------------------------------------------------------------------


@dataclass
class Filters:
    ml_failures: bool = False
    fixed: bool = False
    image_type: str = ""
    q: str = ""
    tag: str = ""  # a label a backend gave a picture ("beach", "text", "logo")

    @classmethod
    def from_query(cls, params) -> "Filters":
        image_type = params.get("type", "")
        return cls(
            ml_failures=params.get("failures") == "1",
            fixed=params.get("fixed") == "1",
            image_type=image_type if image_type in ImageType.values else "",
            q=(params.get("q") or "").strip()[:100],
            tag=normalize_tag(params.get("tag") or "")[:100],
        )

    @property
    def active(self) -> bool:
        return bool(self.ml_failures or self.fixed or self.image_type or self.q or self.tag)


@dataclass
class FixMark:
    attribute: str
    value: str
    source: str  # staff_fix | advertiser_fix
    who: str
    at: datetime
    carried_from_url: str = ""  # set when the fix came from another URL (carried over or followed the picture)
    carried: bool = False


@dataclass
class ImageRow:
    vehicle_image: VehicleImage
    image_type: Resolved
    color: Resolved
    ml_image_type: str  # what the "ML image type" column shows: the ML value, else Placeholder
    ml_color: str  # the scraped colour when given, else the ML colour, else ""
    color_from_scrape: bool
    type_selected: str
    color_selected: str
    marks: list[FixMark] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    @property
    def fixed(self) -> bool:
        return bool(self.marks)

    @property
    def type_options(self) -> str:
        return _options(TYPE, self.type_selected)

    @property
    def color_options(self) -> str:
        return _options(COLOR, self.color_selected)

    @property
    def thumbnail_url(self) -> str:
        image = self.vehicle_image.image
        return image.thumbnail.url if image is not None and image.thumbnail else ""


@lru_cache(maxsize=64)
def _options(attribute: str, selected: str) -> str:
    """The <option> list of a fix dropdown, built once per (attribute, selected value): a page has 600 of them
    and rendering them through the template loop was most of the page's time."""
    return format_html_join(
        "",
        "<option{}>{}</option>",
        ((mark_safe(" selected") if value == selected else "", value) for value in choices_for(attribute)),
    )


@dataclass
class VehicleRow:
    vehicle: Vehicle
    images: list[ImageRow]

    @property
    def hero(self) -> ImageRow | None:
        """The first Dealer picture in position order."""
        return next((row for row in self.images if row.image_type.value == ImageType.DEALER), None)


def _effective_type(*, advertiser: Advertiser):
    """The effective image type of a vehicle image in SQL (same precedence as image_values), for the filter."""

    def latest_fix(**scope):
        return Subquery(
            GroundTruth.objects.filter(image_id=OuterRef("image_id"), attribute=TYPE, **scope)
            .order_by("-created_at", "-id")
            .values("value")[:1]
        )

    ml = Subquery(Prediction.objects.filter(image_id=OuterRef("image_id"), attribute=TYPE).values("value")[:1])
    return Coalesce(
        latest_fix(source=GroundTruth.Source.ADVERTISER_FIX, advertiser=advertiser.slug),
        latest_fix(source=GroundTruth.Source.STAFF_FIX),
        NullIf(ml, Value("")),
        Value(DISPLAY_DEFAULTS[TYPE]),
    )


def vehicles_filtered(*, advertiser: Advertiser, filters: Filters) -> QuerySet[Vehicle]:
    """The advertiser's current vehicles matching the filters, in external-id order (no query yet)."""
    vehicles = Vehicle.objects.filter(advertiser=advertiser, active=True)
    images = VehicleImage.objects.filter(vehicle__advertiser=advertiser, vehicle__active=True, active=True)
    if filters.q:
        vehicles = vehicles.filter(external_id__icontains=filters.q)
    if filters.ml_failures:
        useful = Prediction.objects.filter(image_id=OuterRef("image_id"), attribute=TYPE, value__in=USEFUL_TYPES)
        failing = images.exclude(status=VehicleImage.Status.PENDING).filter(~Exists(useful))
        vehicles = vehicles.filter(id__in=failing.values("vehicle_id"))
    if filters.fixed:
        fixes = GroundTruth.objects.filter(image_id=OuterRef("image_id"), attribute__in=(TYPE, COLOR)).filter(
            Q(source=GroundTruth.Source.STAFF_FIX)
            | Q(source=GroundTruth.Source.ADVERTISER_FIX, advertiser=advertiser.slug)
        )
        vehicles = vehicles.filter(id__in=images.filter(Exists(fixes)).values("vehicle_id"))
    if filters.image_type:
        effective = images.annotate(effective_type=_effective_type(advertiser=advertiser)).filter(
            effective_type=filters.image_type
        )
        vehicles = vehicles.filter(id__in=effective.values("vehicle_id"))
    if filters.tag:
        tagged = ImageLabel.objects.filter(image_id=OuterRef("image_id"), name=filters.tag)
        vehicles = vehicles.filter(id__in=images.filter(Exists(tagged)).values("vehicle_id"))
    return vehicles.order_by("external_id", "id")


def vehicle_rows(*, advertiser: Advertiser, vehicles: list[Vehicle], staff: bool) -> list[VehicleRow]:
    """Everything the review page and the sitemap API show for these vehicles, in 5 queries at most.

    ``staff`` (reviewers, admins) may see other advertisers' names, fixes and URLs; an advertiser user sees
    that another advertiser disagrees, never who or what, and no URL from another advertiser's sitemap.
    """
    by_vehicle = {v.id: v for v in vehicles}
    images = list(
        VehicleImage.objects.filter(vehicle_id__in=by_vehicle, active=True)
        .select_related("image")
        .order_by("vehicle_id", "position")
    )
    for vi in images:
        vi.vehicle = by_vehicle[vi.vehicle_id]  # no query per row
    values = sitemap_values(advertiser=advertiser, vehicle_images=images)
    marks = _fix_marks(advertiser=advertiser, values=values, images=images, staff=staff)
    conflicts = _conflicting_advertiser_fixes(advertiser=advertiser, values=values, images=images)
    rows: dict[int, list[ImageRow]] = defaultdict(list)
    for vi in images:
        image_type, color = values[vi.id][TYPE], values[vi.id][COLOR]
        scraped = bool(vi.vehicle.color)
        row = ImageRow(
            vehicle_image=vi,
            image_type=image_type,
            color=color,
            ml_image_type=image_type.ml_value or DISPLAY_DEFAULTS[TYPE],
            ml_color=vi.vehicle.color if scraped else (color.ml_value or ""),
            color_from_scrape=scraped,
            type_selected=image_type.value or DROPDOWN_DEFAULTS[TYPE],
            color_selected=color.value or DROPDOWN_DEFAULTS[COLOR],
            marks=marks.get(vi.id, []),
        )
        if vi.status == VehicleImage.Status.FAILED:
            row.flags.append(f"not downloaded: {vi.error or 'unknown'}")
        if (
            image_type.source == GroundTruth.Source.ADVERTISER_FIX
            and image_type.value == ImageType.PLACEHOLDER
            and color.value
        ):
            row.flags.append("advertiser Placeholder fix with a colour")
        for attribute, other, value in conflicts.get(vi.id, []):
            if staff:
                row.flags.append(f"{other} fixed the same picture's {attribute} as {value}")
            else:
                row.flags.append(f"another advertiser fixed the same picture's {attribute} differently")
        rows[vi.vehicle_id].append(row)
    return [VehicleRow(vehicle=v, images=rows.get(v.id, [])) for v in vehicles]


def _fix_marks(
    *, advertiser: Advertiser, values: dict[int, dict[str, Resolved]], images: list[VehicleImage], staff: bool
) -> dict[int, list[FixMark]]:
    """Who fixed what and when, and whether the fix was made at another URL: one query.

    Every staff or advertiser fix is written by this app with its history row (ManualFix), which names the
    user. The query runs even when nothing on the page is fixed, so the page costs the same number of queries
    whatever it shows.
    """
    gt_ids = {r.fix.ground_truth_id for per in values.values() for r in per.values() if r.fix}
    history = {
        m.ground_truth_id: m
        for m in ManualFix.objects.filter(ground_truth_id__in=gt_ids or [0]).select_related(
            "user", "carried_from__user"
        )
    }
    marks: dict[int, list[FixMark]] = defaultdict(list)
    for vi in images:
        for attribute, resolved in values[vi.id].items():
            fix = resolved.fix
            if fix is None:
                continue
            manual = history.get(fix.ground_truth_id)
            url, who = "", "staff" if fix.source == GroundTruth.Source.STAFF_FIX else fix.advertiser
            if manual is not None:
                author = manual.user or (manual.carried_from.user if manual.carried_from else None)
                who = author.username if author else who
                # A staff fix made in another advertiser's sitemap carries that advertiser's URL: staff only.
                if staff or manual.advertiser_id == advertiser.id:
                    if manual.carried_from is not None:
                        url = manual.carried_from.url
                    elif manual.url != vi.url:
                        url = manual.url  # same bytes under a new URL: the fix followed the picture
            marks[vi.id].append(
                FixMark(
                    attribute=attribute,
                    value=fix.value,
                    source=fix.source,
                    who=who,
                    at=fix.at,
                    carried_from_url=url,
                    carried=manual is not None and manual.carried_from_id is not None,
                )
            )
    return marks


def _conflicting_advertiser_fixes(
    *, advertiser: Advertiser, values: dict[int, dict[str, Resolved]], images: list[VehicleImage]
) -> dict[int, list[tuple[str, str, str]]]:
    """Pictures another advertiser fixed differently from what this sitemap shows (1 query)."""
    image_ids = {vi.image_id for vi in images if vi.image_id}
    if not image_ids:
        return {}
    latest = _latest_advertiser_fixes(
        GroundTruth.objects.filter(image_id__in=image_ids).exclude(advertiser=advertiser.slug)
    )
    by_image: dict[int, list[tuple[str, str, str]]] = defaultdict(list)
    for (image_id, attribute, other), value in latest.items():
        by_image[image_id].append((attribute, other, value))
    out: dict[int, list[tuple[str, str, str]]] = {}
    for vi in images:
        found = [
            (attribute, other, value)
            for attribute, other, value in by_image.get(vi.image_id, [])
            if attribute in values[vi.id] and values[vi.id][attribute].value != value
        ]
        if found:
            out[vi.id] = found
    return out


def _latest_advertiser_fixes(rows: QuerySet[GroundTruth]) -> dict[tuple[int, str, str], str]:
    """(image, attribute, advertiser) → the value of that advertiser's newest fix among ``rows`` (1 query)."""
    latest: dict[tuple[int, str, str], tuple] = {}
    for gt in rows.filter(source=GroundTruth.Source.ADVERTISER_FIX).only(
        "id", "image_id", "attribute", "value", "advertiser", "created_at"
    ):
        key = (gt.image_id, gt.attribute, gt.advertiser)
        if key not in latest or (gt.created_at, gt.id) > latest[key][:2]:
            latest[key] = (gt.created_at, gt.id, gt.value)
    return {key: value for key, (_at, _id, value) in latest.items()}


@dataclass
class SitemapPage:
    page: Page
    rows: list[VehicleRow]
    scrape: Scrape | None
    failure_alert: bool


def vehicle_ids_filtered(*, advertiser: Advertiser, filters: Filters) -> list[int]:
    """The matching vehicle ids in page order. One query that evaluates the filters once: paginating the
    queryset itself would evaluate them twice (COUNT, then the page), and they scan the advertiser's pictures."""
    return list(vehicles_filtered(advertiser=advertiser, filters=filters).values_list("id", flat=True))


def vehicles_by_ids(ids: list[int]) -> list[Vehicle]:
    found = Vehicle.objects.in_bulk(ids)
    return [found[i] for i in ids if i in found]


def sitemap_page(*, advertiser: Advertiser, filters: Filters, page: int | str, size: int, staff: bool) -> SitemapPage:
    """One page of the review page: ids + vehicles + pictures + values + fixes + flags + last scrape."""
    paginator = Paginator(vehicle_ids_filtered(advertiser=advertiser, filters=filters), size)
    current = paginator.get_page(page)
    rows = vehicle_rows(advertiser=advertiser, vehicles=vehicles_by_ids(list(current.object_list)), staff=staff)
    scrape = Scrape.objects.filter(advertiser=advertiser).order_by("-created_at", "-id").first()
    return SitemapPage(page=current, rows=rows, scrape=scrape, failure_alert=scrape_failure_alert(scrape=scrape))


def scrape_failure_alert(*, scrape: Scrape | None) -> bool:
    """Seed 002's "the classifier failed to respond": an abnormal share of {Placeholder, none} in a run."""
    if scrape is None or not scrape.finished or scrape.done < 5:
        return False
    return scrape.ml_failures / scrape.done > settings.SPOTCHECK_SITEMAP_FAILURE_ALERT


# --- History -----------------------------------------------------------------------------------------------


def fixes_history(
    *,
    advertisers: QuerySet[Advertiser],
    user: str = "",
    attribute: str = "",
    since: date | None = None,
    until: date | None = None,
) -> QuerySet[ManualFix]:
    """Manual fixes, newest first, with everything a history row shows joined in (one query per page)."""
    fixes = ManualFix.objects.filter(advertiser__in=advertisers).select_related(
        "user", "advertiser", "vehicle_image__vehicle", "carried_from__user"
    )
    if user:
        fixes = fixes.filter(user__username=user)
    if attribute:
        fixes = fixes.filter(attribute=attribute)
    tz = timezone.get_current_timezone()
    if since:
        fixes = fixes.filter(created_at__gte=datetime.combine(since, time.min, tzinfo=tz))
    if until:
        fixes = fixes.filter(created_at__lte=datetime.combine(until, time.max, tzinfo=tz))
    return fixes.order_by("-created_at", "-id")


# --- Advertiser list and health ----------------------------------------------------------------------------


@dataclass
class Health:
    advertiser: Advertiser
    scrape: Scrape | None
    images: int = 0
    ml_failures: int = 0
    fixed: int = 0
    placeholder_with_color: int = 0
    conflicts: int = 0
    carried: int = 0
    flags: list[str] = field(default_factory=list)

    @property
    def pct_ml_failures(self) -> float:
        return round(100 * self.ml_failures / self.images, 1) if self.images else 0.0

    @property
    def pct_fixed(self) -> float:
        return round(100 * self.fixed / self.images, 1) if self.images else 0.0


def advertisers_health(*, advertisers: QuerySet[Advertiser]) -> list[Health]:
    """Per advertiser: last scrape, % ML failures, % fixed, and the weird-result flags (constant queries)."""
    latest_scrape = Scrape.objects.filter(advertiser=OuterRef("pk")).order_by("-created_at", "-id").values("id")[:1]
    listed = list(advertisers.annotate(last_scrape_id=Subquery(latest_scrape)).order_by("name"))
    ids = [a.id for a in listed]
    scrapes = Scrape.objects.in_bulk([a.last_scrape_id for a in listed if a.last_scrape_id])
    health = {a.id: Health(advertiser=a, scrape=scrapes.get(a.last_scrape_id)) for a in listed}
    if not ids:
        return []

    useful = Prediction.objects.filter(image_id=OuterRef("image_id"), attribute=TYPE, value__in=USEFUL_TYPES)
    any_fix = GroundTruth.objects.filter(image_id=OuterRef("image_id"), attribute__in=(TYPE, COLOR)).filter(
        Q(source=GroundTruth.Source.STAFF_FIX)
        | Q(source=GroundTruth.Source.ADVERTISER_FIX, advertiser=OuterRef("vehicle__advertiser__slug"))
    )
    stats = (
        VehicleImage.objects.filter(vehicle__advertiser_id__in=ids, vehicle__active=True, active=True)
        .annotate(useful=Exists(useful), has_fix=Exists(any_fix))
        .values("vehicle__advertiser_id")
        .annotate(
            total=Count("id"),
            failures=Count("id", filter=Q(useful=False) & ~Q(status=VehicleImage.Status.PENDING)),
            fixed=Count("id", filter=Q(has_fix=True)),
        )
    )
    for row in stats:
        h = health[row["vehicle__advertiser_id"]]
        h.images, h.ml_failures, h.fixed = row["total"], row["failures"], row["fixed"]

    # Advertiser fixes to Placeholder on a picture that still has a colour (seed 002's weird case).
    placeholder = ManualFix.objects.filter(
        advertiser_id__in=ids, scope=ManualFix.Scope.ADVERTISER, attribute=TYPE, new_value=ImageType.PLACEHOLDER
    )
    colored = Prediction.objects.filter(image_id=OuterRef("image_id"), attribute=COLOR).exclude(value="")
    for row in placeholder.filter(Exists(colored)).values("advertiser_id").annotate(n=Count("image_id", distinct=True)):
        health[row["advertiser_id"]].placeholder_with_color = row["n"]

    for row in (
        ManualFix.objects.filter(advertiser_id__in=ids, carried_from__isnull=False)
        .values("advertiser_id")
        .annotate(n=Count("id"))
    ):
        health[row["advertiser_id"]].carried = row["n"]

    for advertiser_id, n in _conflicts_by_advertiser(advertisers=listed).items():
        health[advertiser_id].conflicts = n

    for h in health.values():
        if scrape_failure_alert(scrape=h.scrape):
            h.flags.append("classifier failed to respond — relaunch")
        if h.placeholder_with_color:
            h.flags.append(f"{h.placeholder_with_color} Placeholder fixes with a colour")
        if h.conflicts:
            h.flags.append(f"{h.conflicts} pictures fixed differently by another advertiser")
        if h.carried:
            h.flags.append(f"{h.carried} fixes carried over to new URLs")
    return [health[a.id] for a in listed]


def _conflicts_by_advertiser(*, advertisers: list[Advertiser]) -> dict[int, int]:
    """Pictures whose latest advertiser fixes by two advertisers differ (2 queries)."""
    slugs = {a.slug: a.id for a in advertisers}
    shared = (
        GroundTruth.objects.filter(source=GroundTruth.Source.ADVERTISER_FIX)
        .values("image_id", "attribute")
        .annotate(n=Count("advertiser", distinct=True))
        .filter(n__gte=2)
        .values("image_id")
    )
    latest = _latest_advertiser_fixes(GroundTruth.objects.filter(image_id__in=shared))
    per_picture: dict[tuple[int, str], dict[str, str]] = defaultdict(dict)
    for (image_id, attribute, slug), value in latest.items():
        per_picture[(image_id, attribute)][slug] = value
    counts: dict[int, set[int]] = defaultdict(set)
    for (image_id, _attribute), by_slug in per_picture.items():
        if len(set(by_slug.values())) > 1:
            for slug in by_slug:
                if slug in slugs:
                    counts[slugs[slug]].add(image_id)
    return {advertiser_id: len(images) for advertiser_id, images in counts.items()}
