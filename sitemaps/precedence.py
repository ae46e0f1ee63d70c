"""Which value wins for one attribute of one picture in one advertiser's sitemap, defined once.

classification.values.PRECEDENCE (advertiser's own fix → staff fix → classifier → default) plus seed 002's
scrape rule (the scraped colour comes before the classifier's). ``sitemap_order`` is the one definition; the
Python path (page, API, fixes) walks it with ``classification.values.pick`` and the SQL path (the type filter)
is generated from it by ``effective_sql``. tests/sitemaps/test_precedence.py runs both against one table.

A picture never downloaded has no Image yet: its fixes are keyed by URL (ManualFix rows with no image) and
take the place of the picture's fixes in the same order.
"""

from functools import cache

from django.db.models import Case, CharField, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce, NullIf

from classification.models import GroundTruth, Prediction
from classification.values import ADVERTISER_FIX, DEFAULT, ML, PRECEDENCE, STAFF_FIX
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


def effective_sql(*, attribute: str, advertiser_slug: str, advertiser_id: int):
    """The effective value of ``attribute`` of a VehicleImage row in this advertiser's sitemap, as SQL."""
    terms = []
    for source in sitemap_order(attribute):
        if source == ADVERTISER_FIX:
            terms.append(
                _fix_term(
                    attribute,
                    Q(source=GroundTruth.Source.ADVERTISER_FIX, advertiser=advertiser_slug),
                    Q(scope=ManualFix.Scope.ADVERTISER, advertiser_id=advertiser_id),
                )
            )
        elif source == STAFF_FIX:
            terms.append(_fix_term(attribute, Q(source=GroundTruth.Source.STAFF_FIX), Q(scope=ManualFix.Scope.STAFF)))
        elif source == SCRAPE:
            terms.append(NullIf("vehicle__color", Value("")))
        elif source == ML:
            ml = Prediction.objects.filter(image_id=OuterRef("image_id"), attribute=attribute).values("value")[:1]
            terms.append(NullIf(Subquery(ml), Value("")))
        elif source == DEFAULT and DISPLAY_DEFAULTS.get(attribute):
            terms.append(Value(DISPLAY_DEFAULTS[attribute]))
    return Coalesce(*terms, output_field=CharField()) if len(terms) > 1 else terms[0]
