"""Request and response bodies of the sitemaps API: what OpenAPI documents is what the views send."""

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

from classification.vocabulary import Attribute, Color, ImageType, is_valid
from sitemaps.models import ManualFix, Scrape

SOURCES = ["advertiser_fix", "staff_fix", "scrape", "ml", "default"]


class ErrorDetail(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(required=False, help_text="Per field messages (400)")


class Error(serializers.Serializer):
    """The one error shape of the API."""

    error = ErrorDetail()


def errors(*statuses: int) -> dict:
    """OpenAPI responses for these error statuses, each with the one error shape."""
    text = {
        400: "Invalid input (names the field or vehicle and why)",
        401: "Not authenticated",
        403: "Not allowed",
        404: "Not found, or not visible to the caller",
        409: "Conflict",
    }
    return {s: OpenApiResponse(Error, description=text[s]) for s in statuses}


class ScrapeOut(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    advertiser = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = Scrape
        fields = [
            "id",
            "url",
            "advertiser",
            "kind",
            "status",
            "vehicles",
            "total",
            "done",
            "from_cache",
            "failed",
            "percent",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_url(self, scrape: Scrape) -> str:
        return self.context["request"].build_absolute_uri(f"/api/v1/scrapes/{scrape.id}/")


class UsageOut(serializers.Serializer):
    pictures = serializers.DictField(child=serializers.IntegerField(), help_text="pictures sent to each backend")
    estimated_cost = serializers.FloatField(help_text="at the configured price per 1,000 pictures")


class ScrapeDetailOut(ScrapeOut):
    """A scrape with its classification's usage: pictures sent to each backend and the estimated cost."""

    usage = UsageOut(read_only=True)

    class Meta(ScrapeOut.Meta):
        fields = [*ScrapeOut.Meta.fields, "usage"]


class InventoryVehicleIn(serializers.Serializer):
    external_id = serializers.CharField(max_length=100)
    title = serializers.CharField(required=False, allow_blank=True)
    color = serializers.ChoiceField(choices=Color.choices, allow_null=True, required=False)
    images = serializers.ListField(child=serializers.URLField(max_length=2000), max_length=40)


class InventoryIn(serializers.Serializer):
    """Documentation of the inventory body; sitemaps.ingest.inventory_parse validates it (its errors name the
    vehicle, which a serializer cannot do at 20,000 vehicles without a 10 MB error)."""

    name = serializers.CharField(required=False, max_length=200)
    vehicles = InventoryVehicleIn(many=True)


class ImageOut(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    position = serializers.IntegerField()
    image_type = serializers.ChoiceField(choices=ImageType.choices, allow_null=True)
    color = serializers.ChoiceField(choices=Color.choices, allow_null=True)
    image_type_source = serializers.ChoiceField(choices=SOURCES)
    color_source = serializers.ChoiceField(choices=SOURCES)
    ml_image_type = serializers.CharField(allow_null=True)
    ml_color = serializers.CharField(allow_null=True)
    fixed = serializers.BooleanField()

    def to_representation(self, row):
        vi = row.vehicle_image
        return {
            "id": vi.id,
            "url": vi.url,
            "position": vi.position,
            "image_type": row.image_type.value,
            "color": row.color.value,
            "image_type_source": row.image_type.source,
            "color_source": row.color.source,
            "ml_image_type": row.image_type.ml_value,
            "ml_color": row.color.ml_value,
            "fixed": row.fixed,
        }


class VehicleOut(serializers.Serializer):
    external_id = serializers.CharField()
    title = serializers.CharField()
    color = serializers.CharField(allow_null=True, help_text="The scraped colour")
    hero_image = ImageOut(allow_null=True, help_text="The first Dealer picture in position order")
    images = ImageOut(many=True)

    def to_representation(self, row):
        return {
            "external_id": row.vehicle.external_id,
            "title": row.vehicle.title,
            "color": row.vehicle.color or None,
            "hero_image": ImageOut(row.hero).data if row.hero else None,
            "images": ImageOut(row.images, many=True).data,
        }


class FixIn(serializers.Serializer):
    vehicle_image = serializers.IntegerField(min_value=1)
    image_type = serializers.CharField(required=False)
    color = serializers.CharField(required=False)
    scope = serializers.ChoiceField(
        choices=ManualFix.Scope.choices,
        required=False,
        help_text="staff (everywhere, staff only; the default for staff) or advertiser (this advertiser only)",
    )

    def validate(self, attrs):
        if "image_type" not in attrs and "color" not in attrs:
            raise serializers.ValidationError("give image_type, color or both")
        for attribute in (Attribute.IMAGE_TYPE, Attribute.COLOR):
            if attribute in attrs and not is_valid(attribute, attrs[attribute]):
                raise serializers.ValidationError({attribute: f"{attrs[attribute]!r} is not a valid {attribute}"})
        return attrs


class FixOut(serializers.ModelSerializer):
    advertiser = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    external_id = serializers.CharField(source="vehicle_image.vehicle.external_id")
    position = serializers.IntegerField(source="vehicle_image.position")
    image = serializers.IntegerField(source="image_id", allow_null=True, help_text="None: not downloaded yet")
    old_value = serializers.SerializerMethodField()
    user = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    carried_from = serializers.IntegerField(source="carried_from_id", allow_null=True)

    class Meta:
        model = ManualFix
        fields = [
            "id",
            "advertiser",
            "vehicle_image",
            "external_id",
            "position",
            "image",
            "url",
            "attribute",
            "old_value",
            "new_value",
            "scope",
            "user",
            "carried_from",
            "created_at",
        ]

    def get_old_value(self, fix: ManualFix) -> str | None:
        return fix.old_value or None


FixesOut = inline_serializer("FixesMade", fields={"fixes": FixOut(many=True)})


def paginated(name: str, item, **extra) -> serializers.Serializer:
    """The page envelope the views send (count, next, previous, results), for OpenAPI."""
    fields = {
        "count": serializers.IntegerField(),
        "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True),
        **extra,
        "results": item(many=True),
    }
    return inline_serializer(name, fields=fields)


SitemapPageOut = paginated(
    "SitemapPage", VehicleOut, pictures=serializers.IntegerField(help_text="Matching pictures on every page")
)
FixPageOut = paginated("FixPage", FixOut)
