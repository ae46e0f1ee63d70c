"""The effective value of an attribute: advertiser fix → staff fix → classifier → default (DESIGN.md).

Pure functions shared by the database selector and the cache, so both answer the same way.
"""

from dataclasses import dataclass
from datetime import datetime

from classification.vocabulary import DISPLAY_DEFAULTS


@dataclass(frozen=True)
class Fix:
    value: str
    source: str  # GroundTruth.Source.STAFF_FIX or ADVERTISER_FIX
    advertiser: str
    user_id: int | None
    at: datetime
    ground_truth_id: int


@dataclass(frozen=True)
class Resolved:
    """What to show for one attribute of one picture, and why."""

    value: str | None
    source: str  # "advertiser_fix" | "staff_fix" | "ml" | "default"
    ml_value: str | None
    ml_score: float | None
    fix: Fix | None

    @property
    def fixed(self) -> bool:
        return self.fix is not None


def newer(a: Fix | None, b: Fix | None) -> Fix | None:
    """The later of two fixes; ties go to the later ground-truth row."""
    if a is None:
        return b
    if b is None:
        return a
    return a if (a.at, a.ground_truth_id) >= (b.at, b.ground_truth_id) else b


# The order of precedence, defined once: resolve() walks it, and the sitemaps app generates its SQL from it.
ADVERTISER_FIX, STAFF_FIX, ML, DEFAULT = "advertiser_fix", "staff_fix", "ml", "default"
FIX_SOURCES = (ADVERTISER_FIX, STAFF_FIX)
PRECEDENCE: tuple[str, ...] = (ADVERTISER_FIX, STAFF_FIX, ML, DEFAULT)


def pick(
    *,
    attribute: str,
    order: tuple[str, ...],
    ml_value: str | None,
    ml_score: float | None = None,
    fixes: dict[str, Fix | None] | None = None,
    values: dict[str, str | None] | None = None,
) -> Resolved:
    """The first source in ``order`` that has a value: a fix (``fixes``), the classifier, another plain value
    (``values``, e.g. the scraped colour), else the default."""
    ml_value = ml_value or None
    for source in order:
        if source in FIX_SOURCES:
            fix = (fixes or {}).get(source)
            if fix is not None:
                return Resolved(fix.value, fix.source, ml_value, ml_score, fix)
        elif source == ML:
            if ml_value:
                return Resolved(ml_value, ML, ml_value, ml_score, None)
        elif source == DEFAULT:
            break
        elif (values or {}).get(source):
            return Resolved(values[source], source, ml_value, ml_score, None)
    return Resolved(DISPLAY_DEFAULTS.get(attribute), DEFAULT, None, None, None)


def resolve(
    *,
    attribute: str,
    ml_value: str | None,
    ml_score: float | None = None,
    staff_fix: Fix | None = None,
    advertiser_fix: Fix | None = None,
) -> Resolved:
    """Apply the order of precedence for one attribute."""
    return pick(
        attribute=attribute,
        order=PRECEDENCE,
        ml_value=ml_value,
        ml_score=ml_score,
        fixes={ADVERTISER_FIX: advertiser_fix, STAFF_FIX: staff_fix},
    )
