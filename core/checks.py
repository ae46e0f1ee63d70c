"""System checks that keep production honest."""

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security)
def loopback_fetching_refused_in_production(app_configs, **kwargs):
    if settings.SPOTCHECK_FETCH_ALLOW_LOOPBACK and not settings.DEBUG:
        return [
            Error(
                "SPOTCHECK_FETCH_ALLOW_LOOPBACK is on with DEBUG=0.",
                hint="Loopback fetching is for tests and the demo; unset it in production.",
                id="core.E001",
            )
        ]
    return []
