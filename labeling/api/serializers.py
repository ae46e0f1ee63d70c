"""API shapes of the labeling app: input validation and output, no logic."""

import uuid

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from labeling.models import CANT_TELL, CANT_TELL_LABEL, Campaign, Item, Vote


def choices_payload(campaign: Campaign) -> list[dict]:
    """Every answer a voter may give, "can't tell" last."""
    return [{"value": v, "label": label} for v, label in campaign.choice_labels()] + [
        {"value": CANT_TELL, "label": CANT_TELL_LABEL}
    ]


class ChoiceSerializer(serializers.Serializer):
    value = serializers.CharField()
    label = serializers.CharField()


class LeasedItemSerializer(serializers.Serializer):
    """Documentation of one leased item in the next response."""

    id = serializers.IntegerField()
    image_url = serializers.CharField()
    choices = ChoiceSerializer(many=True)
    lease_expires = serializers.DateTimeField()


class NextResponseSerializer(serializers.Serializer):
    items = LeasedItemSerializer(many=True)


class ItemStateSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Item.Status.choices)
    label = serializers.CharField(allow_blank=True)
    vote_count = serializers.IntegerField()


class CampaignSerializer(serializers.ModelSerializer):
    choices = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()

    class Meta:
        model = Campaign
        fields = ["id", "name", "attribute", "choices", "votes_required", "max_votes", "active", "progress"]

    @extend_schema_field(ChoiceSerializer(many=True))
    def get_choices(self, campaign) -> list[dict]:
        return choices_payload(campaign)

    def get_progress(self, campaign) -> dict:
        return {
            "items": campaign.n_items,
            "open": campaign.n_open,
            "decided": campaign.n_decided,
            "conflict": campaign.n_conflict,
            "adjudicated": campaign.n_adjudicated,
        }


class NextInputSerializer(serializers.Serializer):
    count = serializers.IntegerField(min_value=1, max_value=20, default=5)
    exclude = serializers.ListField(child=serializers.IntegerField(min_value=1), max_length=200, required=False)


class VoteInputSerializer(serializers.Serializer):
    item = serializers.IntegerField(min_value=1)
    label = serializers.CharField(max_length=40)
    client_uuid = serializers.UUIDField()
    ms_to_answer = serializers.IntegerField(min_value=0, max_value=3_600_000, required=False, allow_null=True)


MAX_BATCH_VOTES = 50


# The hot endpoints read their input without building a serializer when it is plainly valid (JSON types, within
# bounds): building one deep-copies its fields, most of a millisecond per answer. Anything else, every error
# included, goes to the serializer, which stays the one judge and the one wording of what is refused.
# The bounds are read from the serializers' own fields, so a change there changes both readings.
_NEXT = NextInputSerializer().fields
_VOTE = VoteInputSerializer().fields


def _whole(value, low: int, high: int | None = None) -> bool:
    return type(value) is int and value >= low and (high is None or value <= high)


def _plain_label(value) -> bool:
    # ASCII printable and unpadded: what the CharField keeps unchanged (no trim, no NUL, no surrogate)
    if type(value) is not str or not 0 < len(value) <= _VOTE["label"].max_length:
        return False
    return value.isascii() and value.isprintable() and value == value.strip()


def _plain_vote(data) -> dict | None:
    """VoteInputSerializer's validated data for a plainly valid answer, or None."""
    if type(data) is not dict or not _whole(data.get("item"), _VOTE["item"].min_value):
        return None
    if not _plain_label(data.get("label")):
        return None
    ms = data.get("ms_to_answer")
    bounds = (_VOTE["ms_to_answer"].min_value, _VOTE["ms_to_answer"].max_value)
    if type(data.get("client_uuid")) is not str or not (ms is None or _whole(ms, *bounds)):
        return None
    try:
        key = uuid.UUID(data["client_uuid"])
    except ValueError:
        return None
    plain = {"item": data["item"], "label": data["label"], "client_uuid": key}
    if "ms_to_answer" in data:
        plain["ms_to_answer"] = ms
    return plain


def _plain_next(data) -> dict | None:
    """NextInputSerializer's validated data for a plainly valid request, or None."""
    if type(data) is not dict:
        return None
    count = _NEXT["count"]
    plain = {"count": data.get("count", count.default)}
    if not _whole(plain["count"], count.min_value, count.max_value):
        return None
    if "exclude" in data:
        exclude = data["exclude"]
        field = _NEXT["exclude"]
        if type(exclude) is not list or len(exclude) > field.max_length:
            return None
        if not all(_whole(pk, field.child.min_value) for pk in exclude):
            return None
        plain["exclude"] = exclude
    return plain


def vote_input(data) -> tuple[dict | None, dict | None]:
    """(validated answer, None) or (None, the serializer's errors)."""
    plain = _plain_vote(data)
    if plain is not None:
        return plain, None
    serializer = VoteInputSerializer(data=data)
    if serializer.is_valid():
        return serializer.validated_data, None
    return None, serializer.errors


def next_input(data) -> dict:
    """The validated "next" request; raises the serializer's ValidationError (400) otherwise."""
    plain = _plain_next(data)
    if plain is not None:
        return plain
    serializer = NextInputSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class VoteBatchInputSerializer(serializers.Serializer):
    """Documentation of a batch upload; each answer is validated on its own (one bad answer refuses only itself)."""

    votes = serializers.ListField(child=VoteInputSerializer(), min_length=1, max_length=MAX_BATCH_VOTES)


class VoteErrorSerializer(serializers.Serializer):
    """Why one answer of a batch was refused (the error object of the API's error shape)."""

    code = serializers.CharField()
    message = serializers.CharField()
    item = ItemStateSerializer(required=False)
    fields = serializers.DictField(required=False)


def item_state(item: Item) -> dict:
    """What a labeler may know of an item. Gold items must look like any open item (``item.campaign`` is read
    for them: callers load it with the item)."""
    vote_count = item.vote_count
    if item.is_gold:
        # Gold stays open and collects every labeler's answer, so its real count soon passes anything a real
        # open item can show; report it capped below what decides a real item, a count real items also have.
        vote_count = min(vote_count, item.campaign.votes_required - 1)
    return {
        "id": item.pk,
        "status": item.status,
        "label": "" if item.is_gold else item.label,
        "vote_count": vote_count,
    }


_DATETIME = serializers.DateTimeField()  # one instance formats every answer's times as VoteSerializer does


def vote_payload(vote: Vote) -> dict:
    """Exactly VoteSerializer(vote).data (which documents it), built without a serializer per answer."""
    return {
        "id": vote.pk,
        "item": item_state(vote.item),
        "label": vote.label,
        "client_uuid": str(vote.client_uuid),
        "created_at": _DATETIME.to_representation(vote.created_at),
        "undone_at": _DATETIME.to_representation(vote.undone_at),
    }


class VoteSerializer(serializers.ModelSerializer):
    item = serializers.SerializerMethodField()

    class Meta:
        model = Vote
        fields = ["id", "item", "label", "client_uuid", "created_at", "undone_at"]

    @extend_schema_field(ItemStateSerializer)
    def get_item(self, vote) -> dict:
        return item_state(vote.item)


class VoteBatchResultSerializer(serializers.Serializer):
    """One answer's outcome, with the status the single-vote endpoint would have answered."""

    client_uuid = serializers.CharField(allow_null=True)
    status = serializers.IntegerField(help_text="201 recorded, 200 replay, 400/404/409 refused (see error)")
    vote = VoteSerializer(required=False)
    error = VoteErrorSerializer(required=False)


class VoteBatchResponseSerializer(serializers.Serializer):
    results = VoteBatchResultSerializer(many=True, help_text="One per answer sent, in the same order.")
