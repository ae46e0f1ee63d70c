"""Thumbnails in the embedded setup (local storage): served by an authenticated view, only to a user who may
see a sitemap, campaign or dataset holding the picture; anyone else gets a 404 (no existence leak).

Each app answers "may this user see this picture" through a function named in SPOTCHECK_IMAGE_ACCESS, so
classification imports no app that depends on it. With S3 the bucket is private and pages carry short-lived
signed URLs instead.
"""

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from django.utils.module_loading import import_string
from django.views.decorators.http import require_safe

from classification.models import Image


def image_visible(*, user, image_id: int) -> bool:
    return any(import_string(name)(user=user, image_id=image_id) for name in settings.SPOTCHECK_IMAGE_ACCESS)


@require_safe
def thumbnail(request, name: str):
    image = Image.objects.filter(thumbnail=f"thumbnails/{name}").only("id", "thumbnail").first()
    if image is None or not request.user.is_authenticated or not image_visible(user=request.user, image_id=image.id):
        raise Http404("no such picture")
    try:
        handle = default_storage.open(image.thumbnail.name, "rb")
    except FileNotFoundError:
        raise Http404("no such picture") from None
    response = FileResponse(handle, content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=3600"
    return response
