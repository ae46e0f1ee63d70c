"""Reads of the sitemaps app: the review page (a fixed number of queries whatever the page or the advertiser's
size), effective values as the page shows them, history, and per-advertiser health and "weird result" flags."""

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.paginator import Page, Paginator
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from classification.models import GroundTruth, ImageLabel, Prediction
from classification.values import ADVERTISER_FIX, FIX_SOURCES, STAFF_FIX, Fix, Resolved, newer, pick
from classification.vocabulary import DISPLAY_DEFAULTS, DROPDOWN_DEFAULTS, Attribute, ImageType
from sitemaps.models import Advertiser, ManualFix, Scrape, Vehicle, VehicleImage
from sitemaps.precedence import SCRAPE, effective_annotate, sitemap_order

TYPE = Attribute.IMAGE_TYPE
COLOR = Attribute.COLOR
USEFUL_TYPES = (ImageType.DEALER, ImageType.STOCK)


# --- Effective values as the sitemap shows them ---------------------------------------------------------------

# A classifier value at least this sure that contradicts a fix is surfaced as a disagreement.
CONFIDENT_SCORE = 0.9
# "Model unsure": a calibrated score below this on the image type or the colour (a 0.7 is right 7 times in 10).
UNSURE_BELOW = 0.7


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class PictureFixes:
    """Everything about fixes of the pictures of one page: one query for every source and advertiser."""

    # (image_id, attribute) → {"staff_fix": Fix, "advertiser_fix": Fix (this advertiser's)}
    own: dict[tuple[int, str], dict[str, Fix]]
    # (image_id, attribute) → {other advertiser's slug: value of its newest fix}
    others: dict[tuple[int, str], dict[str, str]]
    # (url_hash, attribute) → {"staff_fix": Fix, "advertiser_fix": Fix} for pictures never downloaded
    by_url: dict[tuple[str, str], dict[str, Fix]]
    url_rows: dict[int, ManualFix]  # URL-keyed ManualFix by id, for the Fixed column


def _ids(image_ids) -> QuerySet | list[int]:
    """A set of ids as a parameter list, or a subquery as is (a page's 1,200 ids cost more to bind than to join)."""
    return image_ids if isinstance(image_ids, QuerySet) else (list(image_ids) or [0])


def _picture_fixes(*, advertiser: Advertiser, image_ids, urls: set[str]) -> PictureFixes:
    """Newest staff and advertiser fixes of these pictures (1 query) and of these never-downloaded URLs (1)."""
    rows = GroundTruth.objects.filter(image_id__in=_ids(image_ids), source__in=FIX_SOURCES).only(
        "id", "image_id", "attribute", "value", "source", "advertiser", "created_by_id", "created_at"
    )
    found = _fixes_from_rows(advertiser=advertiser, rows=rows)
    by_url: dict[tuple[str, str], dict[str, Fix]] = {}
    url_rows: dict[int, ManualFix] = {}
    hashes = [url_hash(u) for u in urls] or [""]
    scope = Q(scope=ManualFix.Scope.STAFF) | Q(scope=ManualFix.Scope.ADVERTISER, advertiser_id=advertiser.id)
    for mf in ManualFix.objects.filter(scope, image__isnull=True, url_hash__in=hashes).select_related("user"):
        source = STAFF_FIX if mf.scope == ManualFix.Scope.STAFF else ADVERTISER_FIX
        # A negative id marks a fix keyed by URL (it has no ground-truth row); _fix_marks reads it back.
        fix = Fix(mf.new_value, source, advertiser.slug, mf.user_id, mf.created_at, -mf.id)
        slot = by_url.setdefault((mf.url_hash, mf.attribute), {})
        slot[source] = newer(slot.get(source), fix)
        url_rows[mf.id] = mf
    found.by_url, found.url_rows = by_url, url_rows
    return found


def _ml_values(image_ids) -> dict[tuple[int, str], tuple[str, float | None]]:
    rows = Prediction.objects.filter(image_id__in=_ids(image_ids), attribute__in=(TYPE, COLOR))
    return {(i, a): (v, sc) for i, a, v, sc in rows.values_list("image_id", "attribute", "value", "score")}


def _values(*, vehicle_images: list[VehicleImage], ml: dict, fixes: PictureFixes) -> dict[int, dict[str, Resolved]]:
    """Walk sitemaps.precedence's order for each picture and attribute (no query)."""
    out: dict[int, dict[str, Resolved]] = {}
    for vi in vehicle_images:
        per: dict[str, Resolved] = {}
        for attribute in (TYPE, COLOR):
            if vi.image_id is None:
                ml_value, ml_score = "", None
                slot = fixes.by_url.get((url_hash(vi.url), attribute), {})
            else:
                ml_value, ml_score = ml.get((vi.image_id, attribute), ("", None))
                slot = fixes.own.get((vi.image_id, attribute), {})
            per[attribute] = pick(
                attribute=attribute,
                order=sitemap_order(attribute),
                ml_value=ml_value,
                ml_score=ml_score,
                fixes=slot,
                values={SCRAPE: vi.vehicle.color},
            )
        out[vi.id] = per
    return out


def sitemap_values(*, advertiser: Advertiser, vehicle_images: list[VehicleImage]) -> dict[int, dict[str, Resolved]]:
    """Per vehicle image, the effective image type and colour in this advertiser's sitemap (3 queries).

    The order is sitemaps.precedence's; a picture never downloaded takes its URL's fixes.
    ``vehicle_images`` must have ``vehicle`` loaded.
    """
    image_ids = {vi.image_id for vi in vehicle_images if vi.image_id}
    urls = {vi.url for vi in vehicle_images if vi.image_id is None}
    fixes = _picture_fixes(advertiser=advertiser, image_ids=image_ids, urls=urls)
    return _values(vehicle_images=vehicle_images, ml=_ml_values(image_ids), fixes=fixes)


# --- Disagreements -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Disagreement:
    kind: str  # staff_advertiser | advertiser_advertiser | fix_classifier
    attribute: str
    staff_text: str  # what staff read (names who)
    advertiser_text: str  # what an advertiser user reads (never another advertiser's name or value)


def disagreements_of(
    *,
    attribute: str,
    resolved: Resolved,
    own: dict[str, Fix],
    others: dict[str, str],
    advertiser_slug: str,
) -> list[Disagreement]:
    """The disagreements about one attribute of one picture in one sitemap; the row flags, the list counts
    and the filter all come from here."""
    name = attribute.replace("image_", "")
    found: list[Disagreement] = []
    staff_fix, adv_fix = own.get(STAFF_FIX), own.get(ADVERTISER_FIX)
    if staff_fix is not None and adv_fix is not None and staff_fix.value != adv_fix.value:
        found.append(
            Disagreement(
                "staff_advertiser",
                attribute,
                f"staff fixed {name} as {staff_fix.value}; {advertiser_slug} as {adv_fix.value} (theirs wins here)",
                f"staff fixed {name} as {staff_fix.value}; your {adv_fix.value} wins in your sitemap",
            )
        )
    for other, value in sorted(others.items()):
        if value != resolved.value:
            found.append(
                Disagreement(
                    "advertiser_advertiser",
                    attribute,
                    f"{other} fixed the same picture's {attribute} as {value}",
                    f"another advertiser fixed the same picture's {attribute} differently",
                )
            )
    if (
        resolved.fix is not None
        and resolved.ml_value
        and resolved.ml_value != resolved.value
        and (resolved.ml_score or 0) >= CONFIDENT_SCORE
    ):
        text = f"fixed {name} {resolved.value}; the classifier is {resolved.ml_score:.0%} sure of {resolved.ml_value}"
        found.append(Disagreement("fix_classifier", attribute, text, text))
    return found


def sitemap_disagreements(*, advertisers: list[Advertiser]) -> dict[int, dict[int, tuple[int, set[str], tuple]]]:
    """advertiser id → {vehicle image id: (image id, kinds of disagreement, (external id, vehicle id, position))}
    for its current pictures (3 queries,
    any number of advertisers). Only fixed pictures can disagree, and they are few: only they are read."""
    ids = [a.id for a in advertisers]
    by_id = {a.id: a for a in advertisers}
    fixed_images = GroundTruth.objects.filter(source__in=FIX_SOURCES).values("image_id")
    rows = list(
        VehicleImage.objects.filter(
            vehicle__advertiser_id__in=ids or [0], vehicle__active=True, active=True, image_id__in=fixed_images
        )
        .select_related("vehicle")
        .only("id", "image_id", "url", "position", "vehicle__color", "vehicle__advertiser_id", "vehicle__external_id")
    )
    image_ids = {vi.image_id for vi in rows}
    ml = _ml_values(image_ids)
    all_fixes = list(
        GroundTruth.objects.filter(image_id__in=list(image_ids) or [0], source__in=FIX_SOURCES).only(
            "id", "image_id", "attribute", "value", "source", "advertiser", "created_by_id", "created_at"
        )
    )
    out: dict[int, dict[int, tuple[int, set[str], tuple]]] = defaultdict(dict)
    by_advertiser: dict[int, list[VehicleImage]] = defaultdict(list)
    for vi in rows:
        by_advertiser[vi.vehicle.advertiser_id].append(vi)
    for advertiser_id, images in by_advertiser.items():
        advertiser = by_id[advertiser_id]
        fixes = _fixes_from_rows(advertiser=advertiser, rows=all_fixes)
        values = _values(vehicle_images=images, ml=ml, fixes=fixes)
        for vi in images:
            kinds = {
                d.kind
                for attribute in (TYPE, COLOR)
                for d in disagreements_of(
                    attribute=attribute,
                    resolved=values[vi.id][attribute],
                    own=fixes.own.get((vi.image_id, attribute), {}),
                    others=fixes.others.get((vi.image_id, attribute), {}),
                    advertiser_slug=advertiser.slug,
                )
            }
            if kinds:
                out[advertiser_id][vi.id] = (vi.image_id, kinds, (vi.vehicle.external_id, vi.vehicle_id, vi.position))
    return out


def _fixes_from_rows(*, advertiser: Advertiser, rows) -> PictureFixes:
    """Newest staff fix and this advertiser's newest fix per (picture, attribute), and other advertisers'."""
    own: dict[tuple[int, str], dict[str, Fix]] = {}
    newest_other: dict[tuple[int, str, str], Fix] = {}
    for gt in rows:
        fix = Fix(gt.value, gt.source, gt.advertiser, gt.created_by_id, gt.created_at, gt.id)
        if gt.source == GroundTruth.Source.ADVERTISER_FIX and gt.advertiser != advertiser.slug:
            key = (gt.image_id, gt.attribute, gt.advertiser)
            newest_other[key] = newer(newest_other.get(key), fix)
            continue
        slot = own.setdefault((gt.image_id, gt.attribute), {})
        slot[gt.source] = newer(slot.get(gt.source), fix)
    others: dict[tuple[int, str], dict[str, str]] = defaultdict(dict)
    for (image_id, attribute, slug), fix in newest_other.items():
        others[(image_id, attribute)][slug] = fix.value
    return PictureFixes(own=own, others=dict(others), by_url={}, url_rows={})


# --- Review page --------------------------------------------------------------------------------------------


@dataclass
class Filters:
    ml_failures: bool = False
    fixed: bool = False
    disagreement: bool = False
    image_type: str = ""
    q: str = ""
    tag: str = ""  # a label a backend gave a picture ("beach", "text", "logo")
    unsure: bool = False  # the model's least sure pictures: a calibrated score below UNSURE_BELOW

    @property
    def active(self) -> bool:
        return bool(self.q or self.by_picture)

    @property
    def by_picture(self) -> bool:
        """Filters on pictures: the page then shows the matching pictures only, not whole vehicles."""
        return bool(self.ml_failures or self.fixed or self.disagreement or self.image_type or self.tag or self.unsure)


@dataclass
class FixMark:
    attribute: str
    value: str
    source: str  # staff_fix | advertiser_fix
    who: str
    at: datetime
    carried_from_url: str = ""  # set when the fix came from another URL (carried over or followed the picture)
    carried: bool = False
    before_download: bool = False  # made on the URL before the picture was downloaded


@dataclass(slots=True)
class Picture:
    """The fields of a VehicleImage a page shows, read as tuples: a page of 100 vehicles has 1,200 of them and
    building model instances (with their Image) was a third of its time."""

    id: int
    vehicle_id: int
    position: int
    url: str
    image_id: int | None
    status: str
    error: str
    thumbnail: str  # the stored thumbnail's name, "" when none
    vehicle: Vehicle | None = None


@dataclass
class ImageRow:
    vehicle_image: Picture
    image_type: Resolved
    color: Resolved
    ml_image_type: str  # what the "ML image type" column shows: the ML value, else Placeholder
    ml_color: str  # the scraped colour when given, else the ML colour, else ""
    color_from_scrape: bool
    type_selected: str
    color_selected: str
    marks: list[FixMark] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    disagreements: list[str] = field(default_factory=list)
    vehicles: int = 1  # how many current vehicles show this picture (staff only)
    advertisers: int = 1  # of how many advertisers

    @property
    def fixed(self) -> bool:
        return bool(self.marks)

    @property
    def shared(self) -> bool:
        return self.vehicles > 1 or self.advertisers > 1

    @property
    def thumbnail_url(self) -> str:
        name = self.vehicle_image.thumbnail
        return default_storage.url(name) if name else ""


@dataclass
class VehicleRow:
    vehicle: Vehicle
    images: list[ImageRow]

    @property
    def hero(self) -> ImageRow | None:
        """The first Dealer picture in position order."""
        return next((row for row in self.images if row.image_type.value == ImageType.DEALER), None)


def pictures_filtered(
    *, advertiser: Advertiser, filters: Filters, vehicle_ids: list[int] | None = None
) -> QuerySet[VehicleImage]:
    """The advertiser's current pictures matching the picture filters (no query yet).

    ``vehicle_ids``: the advertiser's current vehicles, when the caller has them. As a list of ids rather than a
    join: joined, PostgreSQL misjudged the filters' selectivity and looped over the vehicles once per picture.
    """
    if vehicle_ids is None:
        vehicles = Vehicle.objects.filter(advertiser=advertiser, active=True)
        vehicle_ids = vehicles.filter(external_id__icontains=filters.q) if filters.q else vehicles
        vehicle_ids = vehicle_ids.values("id")
    images = VehicleImage.objects.filter(vehicle_id__in=vehicle_ids, active=True)
    if filters.ml_failures:
        useful = Prediction.objects.filter(image_id=OuterRef("image_id"), attribute=TYPE, value__in=USEFUL_TYPES)
        images = images.exclude(status=VehicleImage.Status.PENDING).filter(~Exists(useful))
    if filters.fixed:
        fixes = GroundTruth.objects.filter(image_id=OuterRef("image_id"), attribute__in=(TYPE, COLOR)).filter(
            Q(source=GroundTruth.Source.STAFF_FIX)
            | Q(source=GroundTruth.Source.ADVERTISER_FIX, advertiser=advertiser.slug)
        )
        by_url = ManualFix.objects.filter(image__isnull=True, url=OuterRef("url")).filter(
            Q(scope=ManualFix.Scope.STAFF) | Q(advertiser_id=advertiser.id)
        )
        images = images.filter(Exists(fixes) | (Q(image__isnull=True) & Exists(by_url)))
    if filters.image_type:
        images = effective_annotate(
            images, attribute=TYPE, advertiser_slug=advertiser.slug, advertiser_id=advertiser.id
        ).filter(**{f"effective_{TYPE}": filters.image_type})
    if filters.disagreement:
        flagged = sitemap_disagreements(advertisers=[advertiser]).get(advertiser.id, {})
        images = images.filter(id__in=list(flagged) or [0])
    if filters.tag:
        images = images.filter(Exists(ImageLabel.objects.filter(image_id=OuterRef("image_id"), name=filters.tag)))
    if filters.unsure:
        unsure = Prediction.objects.filter(
            image_id=OuterRef("image_id"), attribute__in=(TYPE, COLOR), score__lt=UNSURE_BELOW
        ).exclude(value="")
        images = images.filter(Exists(unsure))
    return images


def _disagreements_only(filters: Filters) -> bool:
    others = filters.ml_failures or filters.fixed or filters.image_type or filters.tag or filters.unsure
    return filters.disagreement and not others


@dataclass
class Matches:
    vehicle_ids: list[int]  # in page order
    pictures: int  # matching pictures in all those vehicles
    picture_ids: set[int] | None  # with a picture filter: the pictures to show; None: every picture


def matches(*, advertiser: Advertiser, filters: Filters) -> Matches:
    """The matching vehicles in page order and the count of matching pictures: one query (plus the
    disagreement filter's own). Paginating a queryset would evaluate the filters twice (COUNT, then the page)."""
    if not filters.by_picture:
        vehicles = Vehicle.objects.filter(advertiser=advertiser, active=True)
        if filters.q:
            vehicles = vehicles.filter(external_id__icontains=filters.q)
        rows = vehicles.annotate(n=Count("images", filter=Q(images__active=True))).order_by("external_id", "id")
        found = list(rows.values_list("id", "n"))
        return Matches([vid for vid, _n in found], sum(n for _vid, n in found), None)
    if _disagreements_only(filters):
        # The flagged pictures are few and already read with their vehicles: no further query.
        flagged = sitemap_disagreements(advertisers=[advertiser]).get(advertiser.id, {})
        ordered = sorted(
            (*place, vi_id)
            for vi_id, (_image_id, _kinds, place) in flagged.items()
            if filters.q.lower() in place[0].lower()
        )
        pairs = [(vehicle_id, vi_id) for _ext, vehicle_id, _pos, vi_id in ordered]
        return Matches(list(dict.fromkeys(v for v, _i in pairs)), len(pairs), {i for _v, i in pairs})
    vehicles = Vehicle.objects.filter(advertiser=advertiser, active=True)
    if filters.q:
        vehicles = vehicles.filter(external_id__icontains=filters.q)
    rank = {vid: n for n, vid in enumerate(vehicles.order_by("external_id", "id").values_list("id", flat=True))}
    found = pictures_filtered(advertiser=advertiser, filters=filters, vehicle_ids=list(rank) or [0]).values_list(
        "vehicle_id", "position", "id"
    )
    pairs = [(v, i) for v, _p, i in sorted(found, key=lambda row: (rank[row[0]], row[1]))]
    return Matches(list(dict.fromkeys(v for v, _i in pairs)), len(pairs), {i for _v, i in pairs})


def vehicle_rows(
    *, advertiser: Advertiser, vehicles: list[Vehicle], staff: bool, picture_ids: set[int] | None = None
) -> list[VehicleRow]:
    """Everything the review page and the sitemap API show for these vehicles, in 6 queries.

    ``staff`` (reviewers, admins) may see other advertisers' names, fixes and URLs; an advertiser user sees
    that another advertiser disagrees, never who or what, and no URL from another advertiser's sitemap.
    ``picture_ids``: show only these pictures (a picture filter is on).
    """
    by_vehicle = {v.id: v for v in vehicles}
    fields = ("id", "vehicle_id", "position", "url", "image_id", "status", "error", "image__thumbnail")
    images = [
        Picture(*values, vehicle=by_vehicle[values[1]])
        for values in VehicleImage.objects.filter(vehicle_id__in=by_vehicle, active=True)
        .order_by("vehicle_id", "position")
        .values_list(*fields)
        if picture_ids is None or values[0] in picture_ids
    ]
    for picture in images:
        picture.thumbnail = picture.thumbnail or ""
    image_ids = VehicleImage.objects.filter(vehicle_id__in=list(by_vehicle) or [0], active=True).values("image_id")
    fixes = _picture_fixes(
        advertiser=advertiser, image_ids=image_ids, urls={vi.url for vi in images if vi.image_id is None}
    )
    values = _values(vehicle_images=images, ml=_ml_values(image_ids), fixes=fixes)
    marks = _fix_marks(advertiser=advertiser, values=values, images=images, staff=staff, fixes=fixes)
    reach = _reach(image_ids) if staff else {}
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
        row.vehicles, row.advertisers = reach.get(vi.image_id, (1, 1))
        if vi.status == VehicleImage.Status.FAILED:
            row.flags.append(f"not downloaded: {vi.error or 'unknown'}")
        elif vi.image_id is None:
            row.flags.append("not downloaded yet")
        if (
            image_type.source == GroundTruth.Source.ADVERTISER_FIX
            and image_type.value == ImageType.PLACEHOLDER
            and color.value
        ):
            row.flags.append("advertiser Placeholder fix with a colour")
        for attribute in (TYPE, COLOR):
            for d in disagreements_of(
                attribute=attribute,
                resolved=values[vi.id][attribute],
                own=fixes.own.get((vi.image_id, attribute), {}),
                others=fixes.others.get((vi.image_id, attribute), {}),
                advertiser_slug=advertiser.slug,
            ):
                row.disagreements.append(d.staff_text if staff else d.advertiser_text)
        rows[vi.vehicle_id].append(row)
    return [VehicleRow(vehicle=v, images=rows.get(v.id, [])) for v in vehicles]


def _reach(image_ids) -> dict[int, tuple[int, int]]:
    """Per picture: on how many current vehicles of how many advertisers it is shown (1 query)."""
    rows = (
        VehicleImage.objects.filter(image_id__in=_ids(image_ids), active=True, vehicle__active=True)
        .values("image_id")
        .annotate(v=Count("vehicle_id", distinct=True), a=Count("vehicle__advertiser_id", distinct=True))
    )
    return {r["image_id"]: (r["v"], r["a"]) for r in rows}


def _fix_marks(
    *,
    advertiser: Advertiser,
    values: dict[int, dict[str, Resolved]],
    images: list[VehicleImage],
    staff: bool,
    fixes: PictureFixes,
) -> dict[int, list[FixMark]]:
    """Who fixed what and when, and whether the fix was made at another URL: one query.

    Every staff or advertiser fix is written by this app with its history row (ManualFix), which names the
    user. The query runs even when nothing on the page is fixed, so the page costs the same number of queries
    whatever it shows.
    """
    gt_ids = {r.fix.ground_truth_id for per in values.values() for r in per.values() if r.fix}
    history = {
        m.ground_truth_id: m
        for m in ManualFix.objects.filter(ground_truth_id__in=[i for i in gt_ids if i > 0] or [0]).select_related(
            "user", "carried_from__user"
        )
    }
    marks: dict[int, list[FixMark]] = defaultdict(list)
    for vi in images:
        for attribute, resolved in values[vi.id].items():
            fix = resolved.fix
            if fix is None:
                continue
            if fix.ground_truth_id < 0:  # keyed by URL: the picture was never downloaded
                manual = fixes.url_rows.get(-fix.ground_truth_id)
                who = manual.user.username if manual is not None and manual.user else "staff"
                marks[vi.id].append(FixMark(attribute, fix.value, fix.source, who, fix.at, before_download=True))
                continue
            manual = history.get(fix.ground_truth_id)
            url, who = "", "staff" if fix.source == GroundTruth.Source.STAFF_FIX else fix.advertiser
            before_download = False
            if manual is not None:
                author = manual.user or (manual.carried_from.user if manual.carried_from else None)
                who = author.username if author else who
                before_download = manual.carried_from is not None and manual.carried_from.image_id is None
                # A staff fix made in another advertiser's sitemap carries that advertiser's URL: staff only.
                if staff or manual.advertiser_id == advertiser.id:
                    if manual.carried_from is not None and manual.carried_from.url != vi.url:
                        url = manual.carried_from.url
                    elif manual.carried_from is None and manual.url != vi.url:
                        url = manual.url  # same bytes under a new URL: the fix followed the picture
            marks[vi.id].append(
                FixMark(
                    attribute=attribute,
                    value=fix.value,
                    source=fix.source,
                    who=who,
                    at=fix.at,
                    carried_from_url=url,
                    carried=manual is not None and manual.carried_from_id is not None and not before_download,
                    before_download=before_download,
                )
            )
    return marks


@dataclass
class SitemapPage:
    page: Page
    rows: list[VehicleRow]
    scrape: Scrape | None
    failure_alert: bool
    pictures: int  # matching pictures across every page


def vehicles_by_ids(ids: list[int]) -> list[Vehicle]:
    found = Vehicle.objects.in_bulk(ids)
    return [found[i] for i in ids if i in found]


def sitemap_page(*, advertiser: Advertiser, filters: Filters, page: int | str, size: int, staff: bool) -> SitemapPage:
    """One page of the review page: ids + vehicles + pictures + values + fixes + flags + last scrape."""
    found = matches(advertiser=advertiser, filters=filters)
    paginator = Paginator(found.vehicle_ids, size)
    current = paginator.get_page(page)
    rows = vehicle_rows(
        advertiser=advertiser,
        vehicles=vehicles_by_ids(list(current.object_list)),
        staff=staff,
        picture_ids=found.picture_ids,
    )
    scrape = Scrape.objects.filter(advertiser=advertiser).order_by("-created_at", "-id").first()
    return SitemapPage(
        page=current,
        rows=rows,
        scrape=scrape,
        failure_alert=scrape_failure_alert(scrape=scrape),
        pictures=found.pictures,
    )


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
    disagreements: int = 0  # pictures with any disagreement (sitemap_disagreements)
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

    # Uncorrelated IN (...) where possible: PostgreSQL runs them once, hashed; a correlated EXISTS inside an
    # aggregate's FILTER ran once per picture (290 ms for 12,000 pictures on a loaded machine).
    useful = Prediction.objects.filter(attribute=TYPE, value__in=USEFUL_TYPES).values("image_id")
    fixes = GroundTruth.objects.filter(attribute__in=(TYPE, COLOR), source__in=FIX_SOURCES)
    own_fix = fixes.filter(image_id=OuterRef("image_id")).filter(
        Q(source=GroundTruth.Source.STAFF_FIX)
        | Q(source=GroundTruth.Source.ADVERTISER_FIX, advertiser=OuterRef("vehicle__advertiser__slug"))
    )
    stats = (
        VehicleImage.objects.filter(vehicle__advertiser_id__in=ids, vehicle__active=True, active=True)
        .values("vehicle__advertiser_id")
        .annotate(
            total=Count("id"),
            failures=Count(
                "id",
                filter=(Q(image_id__isnull=True) | ~Q(image_id__in=useful)) & ~Q(status=VehicleImage.Status.PENDING),
            ),
            # Only the few fixed pictures reach the correlated check.
            fixed=Count("id", filter=Q(image_id__in=fixes.values("image_id")) & Exists(own_fix)),
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

    for advertiser_id, flagged in sitemap_disagreements(advertisers=listed).items():
        h = health[advertiser_id]
        h.disagreements = len(flagged)
        h.conflicts = len(
            {image_id for image_id, kinds, _place in flagged.values() if "advertiser_advertiser" in kinds}
        )

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
