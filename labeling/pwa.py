"""The labeling screen as an installable offline app: the web app manifest and the service worker.

The service worker is served from /label/sw.js (not /static/) so that its scope covers /label/. Its cache
version is a hash of the shell (templates, scripts and styles the labeling screen is made of), or
LABELING_SHELL_VERSION when set: any change of the shell installs a new worker, which drops the old shell
cache. Answers waiting to upload never live in a cache (see static/js/labeling-queue.js).
"""

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.contrib.staticfiles import finders
from django.http import HttpResponse, JsonResponse
from django.templatetags.static import static
from django.views.decorators.cache import never_cache

SHELL_STATIC = [
    "css/spotcheck.css",
    "css/labeling.css",
    "js/labeling.js",
    "js/labeling-queue.js",
    "js/session.js",
    "img/icon-192.png",
    "img/icon-512.png",
]
SW_SOURCE = "js/labeling-sw.js"
SHELL_TEMPLATES = ["base.html", "labeling/label.html", "labeling/campaign_list.html"]


@lru_cache(maxsize=1)
def _computed_version() -> str:
    digest = hashlib.sha256()
    for name in [*SHELL_STATIC, SW_SOURCE]:
        digest.update(Path(finders.find(name)).read_bytes())
    for name in SHELL_TEMPLATES:
        digest.update((Path(settings.BASE_DIR) / "templates" / name).read_bytes())
    return digest.hexdigest()[:12]


def shell_version() -> str:
    """The version of the labeling shell the service worker caches under."""
    return getattr(settings, "LABELING_SHELL_VERSION", "") or _computed_version()


@login_not_required  # holds no data; the browser re-checks it on its own, possibly after a sign-out
@never_cache  # browsers check for a new worker on each visit; a stale one would pin an old shell
def service_worker(request):
    source = Path(finders.find(SW_SOURCE)).read_text()
    body = source.replace("__SHELL_VERSION__", shell_version()).replace(
        "__SHELL_URLS__", json.dumps([static(name) for name in SHELL_STATIC])
    )
    response = HttpResponse(body, content_type="application/javascript; charset=utf-8")
    response["Service-Worker-Allowed"] = "/label/"
    return response


@login_not_required  # browsers fetch the manifest without cookies
def manifest(request):
    return JsonResponse(
        {
            "name": "Spotcheck labeling",
            "short_name": "Spotcheck",
            "description": "Answer one question per picture, online or not.",
            "start_url": "/label/",
            "scope": "/label/",
            "display": "standalone",
            "orientation": "portrait",
            "background_color": "#ffffff",
            "theme_color": "#1f4e79",
            "icons": [
                {"src": static("img/icon-192.png"), "sizes": "192x192", "type": "image/png", "purpose": "any"},
                {"src": static("img/icon-512.png"), "sizes": "512x512", "type": "image/png", "purpose": "any"},
            ],
        },
        content_type="application/manifest+json",
    )
