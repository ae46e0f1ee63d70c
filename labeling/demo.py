"""Demo data for labeling: an active image-type campaign (5 votes required) with generated pictures and
some gold, plus a two-choice banner campaign to try swiping. Idempotent: pictures are keyed by their bytes
and enter a campaign once."""

from classification.services import image_from_bytes
from classification.synthetic import picture_bytes
from classification.vocabulary import Color, ImageType
from labeling.fill import campaign_fill
from labeling.models import Campaign

KIND_LABEL = {"dealer": ImageType.DEALER, "stock": ImageType.STOCK, "placeholder": ImageType.PLACEHOLDER}
# Mostly dealer photos, as on a real listing site.
MIX = ["dealer"] * 6 + ["stock"] * 3 + ["placeholder"]
REAL_PICTURES = 60
GOLD_PICTURES = 9

GUIDELINES = """\
Answer **what kind of picture** this is:

* **Dealer** — a photo of a real vehicle, whatever the background.
* **Stock** — a computer-generated image of a vehicle on a white background.
* **Placeholder** — no vehicle shown: a "photo coming soon" card, a logo.

Some digitally enhanced photos look like renders: if a real photo was clearly the starting point, answer
*Dealer*. When the picture does not let you decide, tap **Can't tell** — it is better than a guess.
"""


def _picture_ids(*, count: int, seed_base: int) -> list[tuple[int, str]]:
    colours = list(Color.values)
    made = []
    for n in range(count):
        kind = MIX[n % len(MIX)]
        data = picture_bytes(
            kind=kind, color=colours[(n * 5) % len(colours)], width=800, height=600, seed=seed_base + n
        )
        made.append((image_from_bytes(data=data).pk, kind))
    return made


def seed(*, users: dict, stdout) -> None:
    """Create (or top up) the demo campaigns; the demo labeler can start at once."""
    admin = users.get("admin")
    campaign, _ = Campaign.objects.get_or_create(
        name="Demo: image type",
        defaults={
            "attribute": "image_type",
            "guidelines": GUIDELINES,
            "votes_required": 5,
            "max_votes": 9,
            "gold_rate": 0.1,
            "active": True,
            "created_by": admin,
        },
    )
    real = _picture_ids(count=REAL_PICTURES, seed_base=1000)
    added = campaign_fill(campaign=campaign, image_ids=[pk for pk, _ in real]).added
    gold = _picture_ids(count=GOLD_PICTURES, seed_base=5000)
    for kind in KIND_LABEL:
        ids = [pk for pk, k in gold if k == kind]
        added += campaign_fill(campaign=campaign, image_ids=ids, gold_label=KIND_LABEL[kind]).added

    banner, _ = Campaign.objects.get_or_create(
        name="Demo: dealer banner",
        defaults={
            "attribute": "banner",
            "guidelines": "Is there a **dealer banner** (text, logo or price band) over the picture? Swipe left "
            "for *Banner*, right for *No banner*.",
            "votes_required": 3,
            "max_votes": 5,
            "gold_rate": 0.0,
            "active": True,
            "created_by": admin,
        },
    )
    banner_added = campaign_fill(campaign=banner, image_ids=[pk for pk, _ in real[:20]]).added
    stdout.write(
        f"labeling: campaign '{campaign.name}' ({campaign.items.count()} pictures, {added} new), "
        f"'{banner.name}' ({banner.items.count()} pictures, {banner_added} new)"
    )
