"""System checks of classification that keep production honest (ids core.E001/E002 kept as documented)."""

from django.conf import settings
from django.core.checks import Error, Tags, register

from classification.fetch import AllowList


@register(Tags.security)
def fetch_allow_list_checked(app_configs, **kwargs):
    """SPOTCHECK_FETCH_ALLOW must parse (core.E002) and reach no loopback address when DEBUG=0 (core.E001)."""
    try:
        allowed = AllowList.parse(settings.SPOTCHECK_FETCH_ALLOW)
    except ValueError as exc:
        return [
            Error(
                f"SPOTCHECK_FETCH_ALLOW: {exc}.",
                hint="Entries are ip:port ([v6]:port) or CIDR networks, comma-separated.",
                id="core.E002",
            )
        ]
    if allowed.allows_loopback() and not settings.DEBUG:
        return [
            Error(
                "SPOTCHECK_FETCH_ALLOW reaches a loopback address with DEBUG=0.",
                hint="Loopback fetching is for tests and the demo; remove 127.0.0.0/8 and ::1 entries in production.",
                id="core.E001",
            )
        ]
    return []
