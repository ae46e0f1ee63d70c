"""API views of the labeling app: validate, call a service or selector, serialize."""

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from core import permissions
from core.api import application_error_body, error_body
from core.api_hot import HotAPIView
from core.errors import ApplicationError
from labeling import services
from labeling.api.serializers import (
    MAX_BATCH_VOTES,
    CampaignSerializer,
    ItemStateSerializer,
    NextInputSerializer,
    NextResponseSerializer,
    VoteBatchInputSerializer,
    VoteBatchResponseSerializer,
    VoteInputSerializer,
    VoteSerializer,
    choices_payload,
    item_state,
    next_input,
    vote_input,
    vote_payload,
)
from labeling.assignment import campaign_active, campaign_items_next, lease_release
from labeling.models import Campaign, Item
from labeling.selectors import campaigns_with_progress

CanLabel = permissions.api_requires(
    *permissions.LABELING, message="Labeling needs the labeler, reviewer or admin role."
)
IsLabelingAdmin = permissions.api_requires(*permissions.ADMIN, message="Filling a campaign needs the admin role.")
IsReviewerOrAdmin = permissions.api_requires(
    *permissions.STAFF, message="The votes export needs the reviewer or admin role."
)


class CampaignListView(generics.ListAPIView):
    """Active campaigns with their progress."""

    permission_classes = [CanLabel]
    serializer_class = CampaignSerializer

    def get_queryset(self):
        return campaigns_with_progress(active_only=True)


_NO_CAMPAIGN = "no active campaign with this id"


class CampaignNextView(HotAPIView):
    """Lease the next items of a campaign to the caller."""

    permission_classes = [CanLabel]

    @extend_schema(request=NextInputSerializer, responses={200: NextResponseSerializer})
    def post(self, request, pk: int):
        try:
            params = next_input(request.data)
        except ValidationError:
            if campaign_active(pk=pk) is None:  # no such campaign comes before a wrong request
                raise Http404(_NO_CAMPAIGN) from None
            raise
        answer = _next(request.user, pk, params)
        if answer is None:
            raise Http404(_NO_CAMPAIGN)
        return Response(answer)

    @classmethod
    def hot(cls, request, user, data, pk: int):
        try:
            params = next_input(data)
        except ValidationError:
            return None
        answer = _next(user, pk, params)
        return None if answer is None else (200, answer)  # None: no campaign, nothing leased; DRF says 404


def _next(user, campaign_id: int, params: dict) -> dict | None:
    """The leased items' payload, or None when there is no such active campaign."""
    campaign, assigned = campaign_items_next(
        user=user, campaign_id=campaign_id, count=params["count"], exclude_ids=set(params.get("exclude", []))
    )
    if campaign is None:
        return None
    choices = choices_payload(campaign)
    return {
        "items": [
            {
                "id": a.item.pk,
                "image_url": a.item.image.thumbnail.url if a.item.image.thumbnail else "",
                "choices": choices,
                "lease_expires": a.expires_at,
            }
            for a in assigned
        ]
    }


class VoteCreateView(HotAPIView):
    """Record an answer: 201 new, 200 replay of the same client_uuid, 409 item closed, 400 unknown label."""

    permission_classes = [CanLabel]

    @extend_schema(request=VoteInputSerializer, responses={201: VoteSerializer, 200: VoteSerializer})
    def post(self, request):
        answer, errors = vote_input(request.data)
        if errors is not None:
            raise ValidationError(errors)
        status_code, payload = _vote(request.user, answer)
        return Response(payload, status=status_code)

    @classmethod
    def hot(cls, request, user, data):
        answer, errors = vote_input(data)
        return None if errors is not None else _vote(user, answer)


def _vote(user, answer: dict) -> tuple[int, dict]:
    result = _record(user, answer)
    return (status.HTTP_201_CREATED if result.created else status.HTTP_200_OK), vote_payload(result.vote)


class VoteBatchView(HotAPIView):
    """Record several answers in one request (the phone's queue upload): each is idempotent by its
    client_uuid and recorded on its own, in order; the answer lists one result per vote."""

    permission_classes = [CanLabel]

    @extend_schema(request=VoteBatchInputSerializer, responses={200: VoteBatchResponseSerializer})
    def post(self, request):
        votes = request.data.get("votes") if isinstance(request.data, dict) else None
        if not _batch_ok(votes):
            raise ApplicationError(
                f"votes: send a list of 1 to {MAX_BATCH_VOTES} answers",
                extra={"fields": {"votes": [f"a list of 1 to {MAX_BATCH_VOTES} answers"]}},
            )
        return Response({"results": [_vote_result(request.user, entry) for entry in votes]})

    @classmethod
    def hot(cls, request, user, data):
        votes = data.get("votes")
        if not _batch_ok(votes):
            return None
        return 200, {"results": [_vote_result(user, entry) for entry in votes]}


def _batch_ok(votes) -> bool:
    return isinstance(votes, list) and 1 <= len(votes) <= MAX_BATCH_VOTES


def _vote_result(user, entry) -> dict:
    """What POST /votes/ would have answered for this one answer, as a batch result."""
    answer, errors = vote_input(entry)
    key = entry.get("client_uuid") if isinstance(entry, dict) else None
    if errors is not None:
        first = next(iter(errors.items()))
        fields = {name: [str(m) for m in messages] for name, messages in errors.items()}
        body = error_body(code="invalid", message=f"{first[0]}: {first[1][0]}", fields=fields)
        return {"client_uuid": key, "status": 400, **body}
    try:
        result = _record(user, answer)
    except services.LabelingError as exc:
        return {"client_uuid": key, "status": exc.status, **application_error_body(exc)}
    return {"client_uuid": key, "status": 201 if result.created else 200, "vote": vote_payload(result.vote)}


def _record(user, answer: dict) -> services.VoteResult:
    return services.vote_record(
        user=user,
        item_id=answer["item"],
        label=answer["label"],
        client_uuid=answer["client_uuid"],
        ms_to_answer=answer.get("ms_to_answer"),
    )


class VoteDetailView(APIView):
    """Undo the caller's last vote (named by id or client_uuid) while its item is open."""

    permission_classes = [CanLabel]

    @extend_schema(responses={204: None})
    def delete(self, request, ref: str):
        services.vote_undo(user=request.user, vote_ref=ref)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ItemDetailView(APIView):
    """An item's status, label and vote count."""

    permission_classes = [CanLabel]

    @extend_schema(responses={200: ItemStateSerializer})
    def get(self, request, pk: int):
        return Response(item_state(get_object_or_404(Item.objects.select_related("campaign"), pk=pk)))


class ItemLeaseView(APIView):
    """Give back the caller's lease on an item (the phone's skip), so others may get it at once."""

    permission_classes = [CanLabel]

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int):
        lease_release(user=request.user, item_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CampaignFillView(APIView):
    """Add pictures to a campaign: source advertiser/query/random (answers 200 with counts) or zip (202)."""

    permission_classes = [IsLabelingAdmin]

    @extend_schema(request=dict, responses={200: dict, 202: dict})
    def post(self, request, pk: int):
        from labeling.forms import FillForm

        campaign = get_object_or_404(Campaign, pk=pk)
        form = FillForm(request.data, request.FILES, campaign=campaign)
        if not form.is_valid():
            first = next(iter(form.errors.items()))
            raise ApplicationError(
                f"{first[0]}: {first[1][0]}", extra={"fields": {k: list(v) for k, v in form.errors.items()}}
            )
        message, result = form.run()
        if result is None:
            return Response({"queued": True, "message": message}, status=status.HTTP_202_ACCEPTED)
        return Response({"added": result.added, "already": result.already, "message": message})


class CampaignVotesCsvView(APIView):
    """Raw votes of a campaign as CSV with columns task,worker,label (real items, can't tell left out)."""

    permission_classes = [IsReviewerOrAdmin]

    @extend_schema(responses={(200, "text/csv"): str})
    def get(self, request, pk: int):
        from labeling.views import votes_csv_response

        return votes_csv_response(get_object_or_404(Campaign, pk=pk))
