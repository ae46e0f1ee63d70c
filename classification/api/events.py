"""Bucket event endpoints: S3 notifications through an SNS HTTPS subscription, and Azure Event Grid.

Neither sender can hold an API token: SNS deliveries are authenticated by their signature, Event Grid ones
by the key in the subscription's URL (classification/events.py). Each new object is classified in the
background; the answer only says what was queued.
"""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from classification import events
from core.errors import ApplicationError

REFUSED = {
    400: OpenApiResponse(description="Not an event we understand."),
    403: OpenApiResponse(description="Signature, certificate host, topic or key refused."),
    413: OpenApiResponse(description="Body too large."),
}


class _EventView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def _answer(self, handle) -> Response:
        length = self.request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > events.MAX_BODY:
            raise ApplicationError("The event body is too large.", code="too_large", status=413)
        handled = handle(self.request.body)
        return Response(handled.answer or {"queued": handled.queued})


class SnsEventView(_EventView):
    """S3 event notifications delivered by SNS (HTTPS subscription); the subscription is confirmed here."""

    @extend_schema(
        request={"text/plain": {"type": "string", "description": "An SNS message (JSON) as SNS posts it."}},
        responses={
            200: OpenApiResponse(description='{"queued": ["s3://bucket/key", …]} or {"confirmed": arn}'),
            **REFUSED,
        },
        auth=[],
    )
    def post(self, request):
        return self._answer(lambda body: events.sns_handle(body=body))


class EventGridView(_EventView):
    """Azure Event Grid deliveries (Event Grid schema): the validation handshake and BlobCreated events."""

    @extend_schema(
        request={"application/json": {"type": "array", "items": {"type": "object"}}},
        parameters=[OpenApiParameter("key", str, required=True, description="SPOTCHECK_EVENTGRID_KEY")],
        responses={200: OpenApiResponse(description='{"validationResponse": code} or {"queued": [url, …]}'), **REFUSED},
        auth=[],
    )
    def post(self, request):
        key = request.query_params.get("key", "")
        return self._answer(lambda body: events.eventgrid_handle(body=body, key=key))
