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


def resolve(
    *,
    attribute: str,
    ml_value: str | None,
    ml_score: float | None = None,
    staff_fix: Fix | None = None,
    advertiser_fix: Fix | None = None,
) -> Resolved:
    """Apply the order of precedence for one attribute."""
    for fix in (advertiser_fix, staff_fix):
        if fix is not None:
            return Resolved(fix.value, fix.source, ml_value or None, ml_score, fix)
    if ml_value:
        return Resolved(ml_value, "ml", ml_value, ml_score, None)
    return Resolved(DISPLAY_DEFAULTS.get(attribute), "default", None, None, None)
