"""The one place that defines the attributes Spotcheck knows and the values each may take."""

from django.db import models


class Attribute(models.TextChoices):
    IMAGE_TYPE = "image_type", "Image type"
    COLOR = "color", "Colour"
    BANNER = "banner", "Banner"
    POSITION = "position", "Position"


class ImageType(models.TextChoices):
    DEALER = "Dealer", "Dealer (photo of a real vehicle)"
    STOCK = "Stock", "Stock (computer-generated, white background)"
    PLACEHOLDER = "Placeholder", "Placeholder (no vehicle shown)"


class Color(models.TextChoices):
    BLACK = "Black"
    BLUE = "Blue"
    BROWN = "Brown"
    BURGUNDY = "Burgundy"
    GREEN = "Green"
    GREY = "Grey"
    ORANGE = "Orange"
    PINK = "Pink"
    PURPLE = "Purple"
    RED = "Red"
    WHITE = "White"
    YELLOW = "Yellow"


class Banner(models.TextChoices):
    YES = "yes", "Banner"
    NO = "no", "No banner"


class Position(models.TextChoices):
    FRONT = "front", "Front"
    REAR = "rear", "Rear"
    SIDE = "side", "Side"
    FRONT_THREE_QUARTER = "front-3/4", "Front ¾"
    REAR_THREE_QUARTER = "rear-3/4", "Rear ¾"
    INTERIOR = "interior", "Interior"
    DASHBOARD = "dashboard", "Dashboard"
    ENGINE = "engine", "Engine"
    TRUNK = "trunk", "Trunk"
    WHEEL = "wheel", "Wheel"
    DETAIL = "detail", "Detail"
    OTHER = "other", "Other"


VALUES: dict[str, type[models.TextChoices]] = {
    Attribute.IMAGE_TYPE: ImageType,
    Attribute.COLOR: Color,
    Attribute.BANNER: Banner,
    Attribute.POSITION: Position,
}

# Attributes the classifier produces; banner and position come only from people.
ML_ATTRIBUTES: tuple[str, ...] = (Attribute.IMAGE_TYPE, Attribute.COLOR)

# Seed 002: the ML image type shows Placeholder when the classifier returned nothing; the ML colour
# shows nothing. The fix dropdowns preselect the ML value, else Placeholder and Black.
DISPLAY_DEFAULTS: dict[str, str | None] = {Attribute.IMAGE_TYPE: ImageType.PLACEHOLDER, Attribute.COLOR: None}
DROPDOWN_DEFAULTS: dict[str, str] = {Attribute.IMAGE_TYPE: ImageType.PLACEHOLDER, Attribute.COLOR: Color.BLACK}


def choices_for(attribute: str) -> list[str]:
    """The values an attribute may take, in display order."""
    try:
        return list(VALUES[attribute].values)
    except KeyError:
        raise ValueError(f"unknown attribute {attribute!r}; expected one of {', '.join(Attribute.values)}") from None


def is_valid(attribute: str, value: str) -> bool:
    return attribute in VALUES and value in VALUES[attribute].values


def normalize(attribute: str, value: str) -> str | None:
    """The canonical spelling of a value, matched case-insensitively ("grey" → "Grey"), or None."""
    if attribute not in VALUES:
        return None
    wanted = value.strip().casefold()
    for candidate in VALUES[attribute].values:
        if candidate.casefold() == wanted:
            return candidate
    return None
