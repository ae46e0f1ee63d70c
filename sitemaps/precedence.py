"""Which value wins for one attribute of one picture in one advertiser's sitemap, defined once.

classification.values.PRECEDENCE (advertiser's own fix → staff fix → classifier → default) plus seed 002's
scrape rule (the scraped colour comes before the classifier's). ``sitemap_order`` is the one definition; the
Python path (page, API, fixes) walks it with ``classification.values.pick`` and the SQL path (the type filter)
is generated from it by ``effective_annotate``. tests/sitemaps/test_precedence.py runs both against one table.

A picture never downloaded has no Image yet: its fixes are keyed by URL (ManualFix rows with no image) and
take the place of the picture's fixes in the same order.
"""

from functools import cache

from django.db.models import Case, CharField, F, FilteredRelation, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce, NullIf

from classification.models import GroundTruth
from classification.values import ADVERTISER_FIX, DEFAULT, FIX_SOURCES, ML, PRECEDENCE, STAFF_FIX
from classification.vocabulary import DISPLAY_DEFAULTS, Attribute
from sitemaps.models import ManualFix

SCRAPE = "scrape"


@cache
def sitemap_order(attribute: str) -> tuple[str, ...]:
    """The order of precedence in a sitemap: the scraped colour goes just before the classifier's colour."""
    if attribute != Attribute.COLOR:
        return PRECEDENCE
    at = PRECEDENCE.index(ML)
    return (*PRECEDENCE[:at], SCRAPE, *PRECEDENCE[at:])


def _latest_gt_fix(attribute: str, scope: Q) -> Subquery:
    return Subquery(
        GroundTruth.objects.filter(scope, image_id=OuterRef("image_id"), attribute=attribute)
        .order_by("-created_at", "-id")
        .values("value")[:1]
    )


def _latest_url_fix(attribute: str, scope: Q) -> Subquery:
    # Correlated on the URL text: only evaluated for rows with no picture yet (see effective_sql's Case).
    return Subquery(
        ManualFix.objects.filter(scope, image__isnull=True, url=OuterRef("url"), attribute=attribute)
        .order_by("-created_at", "-id")
        .values("new_value")[:1]
    )


def _fix_term(attribute: str, gt_scope: Q, url_scope: Q):
    return Case(
        When(image_id__isnull=True, then=_latest_url_fix(attribute, url_scope)),
        default=_latest_gt_fix(attribute, gt_scope),
        output_field=CharField(),
    )


def effective_annotate(queryset, *, attribute: str, advertiser_slug: str, advertiser_id: int):
    """``queryset`` of VehicleImage annotated with ``effective_<attribute>``: its effective value in this
    advertiser's sitemap, in SQL. The classifier's value is a LEFT JOIN (one row per picture and attribute)."""
    ml = f"ml_{attribute}"
    queryset = queryset.annotate(
        **{ml: FilteredRelation("image__predictions", condition=Q(image__predictions__attribute=attribute))}
    )
    expression = effective_sql(
        attribute=attribute, advertiser_slug=advertiser_slug, advertiser_id=advertiser_id, ml_value=F(f"{ml}__value")
    )
    return queryset.annotate(**{f"effective_{attribute}": expression})


def effective_sql(*, attribute: str, advertiser_slug: str, advertiser_id: int, ml_value):
    """The effective value of ``attribute`` of a VehicleImage row in this advertiser's sitemap, as SQL
    (``ml_value``: the classifier's value, as an expression; see effective_annotate).

    The fix terms (correlated subqueries) are only evaluated for the few pictures that have a fix, or no picture
    yet; every other row takes the rest of the order (scrape, classifier, default). Evaluating them on all 12,000
    pictures of an advertiser took a second on PostgreSQL.
    """
    ordered = []  # (source, SQL term) in the order of precedence
    for source in sitemap_order(attribute):
        if source == ADVERTISER_FIX:
            gt_scope = Q(source=GroundTruth.Source.ADVERTISER_FIX, advertiser=advertiser_slug)
            url_scope = Q(scope=ManualFix.Scope.ADVERTISER, advertiser_id=advertiser_id)
            ordered.append((source, _fix_term(attribute, gt_scope, url_scope)))
        elif source == STAFF_FIX:
            gt_scope, url_scope = Q(source=GroundTruth.Source.STAFF_FIX), Q(scope=ManualFix.Scope.STAFF)
            ordered.append((source, _fix_term(attribute, gt_scope, url_scope)))
        elif source == SCRAPE:
            ordered.append((source, NullIf("vehicle__color", Value(""))))
        elif source == ML:
            ordered.append((source, NullIf(ml_value, Value(""))))
        elif source == DEFAULT and DISPLAY_DEFAULTS.get(attribute):
            ordered.append((source, Value(DISPLAY_DEFAULTS[attribute])))
    terms = [term for _source, term in ordered]
    plain = [term for source, term in ordered if source not in FIX_SOURCES]
    fixed = (
        GroundTruth.objects.filter(attribute=attribute)
        .filter(
            Q(source=GroundTruth.Source.STAFF_FIX)
            | Q(source=GroundTruth.Source.ADVERTISER_FIX, advertiser=advertiser_slug)
        )
        .values("image_id")
    )
    return Case(
        When(Q(image_id__isnull=True) | Q(image_id__in=fixed), then=_coalesce(terms)),
        default=_coalesce(plain),
        output_field=CharField(),
    )


def _coalesce(terms):
    if not terms:
        return Value(None, output_field=CharField())
    return Coalesce(*terms, output_field=CharField()) if len(terms) > 1 else terms[0]
