"""The list filters of the sitemaps pages and API, as django-filter FilterSets: one definition validates the
query string (a bad date or type answers a form error / a 400, never a silently empty list) and filters.

The review page's picture filters need the advertiser and its precedence rule, so SitemapFilterSet validates
and hands a ``Filters`` to sitemaps.selectors, which owns those queries; the history filters are plain
queryset filters.
"""

from datetime import datetime, time

import django_filters
from django import forms
from django.utils import timezone

from classification.labels import normalize_tag
from classification.vocabulary import Attribute, ImageType
from sitemaps.models import ManualFix
from sitemaps.selectors import Filters

ONE = [("1", "yes")]


class SitemapFilterSet(django_filters.FilterSet):
    """?q= (external id contains), type= (effective image type), failures=1, fixed=1, disagreement=1, unsure=1, tag=."""

    q = django_filters.CharFilter(label="External id contains", max_length=100, method="by_selector")
    type = django_filters.ChoiceFilter(choices=ImageType.choices, label="Effective image type", method="by_selector")
    failures = django_filters.ChoiceFilter(choices=ONE, label="ML failures only", method="by_selector")
    fixed = django_filters.ChoiceFilter(choices=ONE, label="Fixed only", method="by_selector")
    disagreement = django_filters.ChoiceFilter(choices=ONE, label="Disagreements only", method="by_selector")
    unsure = django_filters.ChoiceFilter(
        choices=ONE, label="Model unsure (a calibrated score below 0.7)", method="by_selector"
    )
    tag = django_filters.CharFilter(
        label='A label a backend gave the picture ("beach", "text", "logo")', max_length=100, method="by_selector"
    )

    def by_selector(self, queryset, name, value):
        return queryset  # applied by sitemaps.selectors.matches(), which knows the advertiser

    def as_filters(self) -> Filters:
        """The validated filters (call is_valid() first)."""
        data = self.form.cleaned_data
        return Filters(
            q=(data.get("q") or "").strip(),
            image_type=data.get("type") or "",
            ml_failures=data.get("failures") == "1",
            fixed=data.get("fixed") == "1",
            disagreement=data.get("disagreement") == "1",
            tag=normalize_tag(data.get("tag") or ""),
            unsure=data.get("unsure") == "1",
        )


class FixHistoryFilterSet(django_filters.FilterSet):
    """?user= (username), attribute=, since=/until= (YYYY-MM-DD, inclusive, in the site's time zone)."""

    user = django_filters.CharFilter(field_name="user__username", label="User")
    attribute = django_filters.ChoiceFilter(
        choices=[(Attribute.IMAGE_TYPE, "Image type"), (Attribute.COLOR, "Colour")], label="Attribute"
    )
    since = django_filters.DateFilter(method="from_date", label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = django_filters.DateFilter(method="to_date", label="To", widget=forms.DateInput(attrs={"type": "date"}))

    class Meta:
        model = ManualFix
        fields = ["user", "attribute", "since", "until"]

    def from_date(self, queryset, name, value):
        tz = timezone.get_current_timezone()
        return queryset.filter(created_at__gte=datetime.combine(value, time.min, tzinfo=tz))

    def to_date(self, queryset, name, value):
        tz = timezone.get_current_timezone()
        return queryset.filter(created_at__lte=datetime.combine(value, time.max, tzinfo=tz))
