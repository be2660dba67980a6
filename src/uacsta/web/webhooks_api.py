"""The webhook management API under ``/api/v1/webhooks`` and the OpenAPI ``webhooks`` section.

Administrators and ``admin``-scoped API tokens only. Endpoints are created with a signing
secret (generated unless given) that appears only in the creation answer; deliveries are
listed per endpoint. :data:`openapi_webhooks` describes the requests uacsta sends to receivers, one
per event type, for the OpenAPI document (docs/webhooks.md has the prose).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from uacsta.journal.webhooks import (
    EVENT_TYPES,
    TEST_EVENT,
    WebhookError,
    WebhookService,
    url_for_log,
)
from uacsta.store.outbox import Delivery, Endpoint
from uacsta.web.apicommon import NOT_FOUND, Admin, ApiError, api_router

__all__ = ["openapi_webhooks", "router"]

log = logging.getLogger("uacsta.web.api")

router = api_router()

IdPath = Annotated[str, Path(max_length=32, description="The endpoint's ID")]


# --- bodies -----------------------------------------------------------------------------------

EventType = Literal[
    "call.ringing",
    "call.dialing",
    "call.answered",
    "call.held",
    "call.retrieved",
    "call.missed",
    "call.ended",
    "phone.online",
    "phone.offline",
    "dnd.changed",
    "forwarding.changed",
]
assert set(EventType.__args__) == set(EVENT_TYPES)  # type: ignore[attr-defined]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookCreate(_Body):
    url: str = Field(
        min_length=1, max_length=2048, description="http:// or https:// URL that receives POSTs"
    )
    events: list[EventType] = Field(min_length=1, description="Event types to send")
    lines: list[Annotated[str, Field(min_length=1, max_length=255)]] | None = Field(
        default=None,
        description="Only events of these lines (device IDs or extensions); null: every line",
    )
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=255,
        description="Signing secret; omitted: generated (32 random bytes, URL-safe base64)",
    )
    description: str = Field(default="", max_length=255)
    enabled: bool = True


class WebhookPatch(_Body):
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    events: list[EventType] | None = Field(default=None, min_length=1)
    lines: list[Annotated[str, Field(min_length=1, max_length=255)]] | None = Field(
        default=None, description="Replaces the line filter; an empty list: every line"
    )
    description: str | None = Field(default=None, max_length=255)
    enabled: bool | None = None


class WebhookInfo(BaseModel):
    id: str
    url: str
    events: list[str]
    lines: list[str] | None
    enabled: bool
    created: str
    description: str
    pending: int = Field(default=0, description="Deliveries waiting for an attempt or a retry")
    delivered: int = 0
    failed: int = Field(default=0, description="Deliveries given up after the retry period")


class WebhookCreated(WebhookInfo):
    secret: str = Field(description="Shown once: the HMAC-SHA256 key of X-Uacsta-Signature")


class DeliveryInfo(BaseModel):
    id: str = Field(description="Delivery ID (X-Uacsta-Delivery, the payload's id)")
    endpoint_id: str
    type: str
    created: float = Field(description="Unix time of the event")
    attempts: int
    state: Literal["pending", "delivered", "failed"]
    next_attempt_at: float | None
    delivered_at: float | None
    last_status: int | None = Field(description="HTTP status of the last attempt")
    last_error: str | None


class TestQueued(BaseModel):
    delivery: str = Field(description="Delivery ID of the queued webhook.test event")


# --- routes -----------------------------------------------------------------------------------


def _service(request: Request) -> WebhookService:
    service: WebhookService | None = getattr(request.app.state.server, "webhooks", None)
    if service is None:
        raise ApiError(503, "webhooks are not running")
    return service


def _info(endpoint: Endpoint, counts: dict[str, int]) -> dict[str, Any]:
    return {**endpoint.to_json(), **counts}


async def _known(service: WebhookService, endpoint_id: str) -> Endpoint:
    endpoint = service.endpoint(endpoint_id)
    if endpoint is None:
        raise ApiError(404, f"no webhook endpoint {endpoint_id!r}")
    return endpoint


@router.get("/webhooks", tags=["webhooks"], summary="Webhook endpoints")
async def list_webhooks(request: Request, _who: Admin) -> list[WebhookInfo]:
    service = _service(request)
    return [WebhookInfo(**_info(e, await service.counts(e.id))) for e in service.endpoints()]


@router.post("/webhooks", tags=["webhooks"], status_code=201, summary="Add an endpoint")
async def create_webhook(request: Request, body: WebhookCreate, who: Admin) -> WebhookCreated:
    """A new endpoint; the answer holds its signing secret, shown only here."""
    service = _service(request)
    try:
        endpoint = await service.add_endpoint(
            url=body.url,
            events=body.events,
            lines=body.lines,
            secret=body.secret,
            description=body.description,
            enabled=body.enabled,
        )
    except WebhookError as exc:
        raise ApiError(422, f"invalid request: {exc}") from None
    log.info(
        "webhook endpoint %s (%s) created by %s", endpoint.id, url_for_log(endpoint.url), who.name
    )
    counts = await service.counts(endpoint.id)
    return WebhookCreated(**_info(endpoint, counts), secret=endpoint.secret)


@router.get("/webhooks/{endpoint_id}", tags=["webhooks"], responses=NOT_FOUND)
async def get_webhook(request: Request, endpoint_id: IdPath, _who: Admin) -> WebhookInfo:
    service = _service(request)
    endpoint = await _known(service, endpoint_id)
    return WebhookInfo(**_info(endpoint, await service.counts(endpoint.id)))


@router.patch("/webhooks/{endpoint_id}", tags=["webhooks"], responses=NOT_FOUND)
async def patch_webhook(
    request: Request, endpoint_id: IdPath, body: WebhookPatch, who: Admin
) -> WebhookInfo:
    """Change the URL, events, line filter, description or enable/disable (the secret stays)."""
    service = _service(request)
    await _known(service, endpoint_id)
    lines: list[str] | bool | None = False
    if "lines" in body.model_fields_set:
        lines = body.lines or None
    try:
        endpoint = await service.update_endpoint(
            endpoint_id,
            url=body.url,
            events=body.events,
            lines=lines,
            enabled=body.enabled,
            description=body.description,
        )
    except WebhookError as exc:
        raise ApiError(422, f"invalid request: {exc}") from None
    if endpoint is None:
        raise ApiError(404, f"no webhook endpoint {endpoint_id!r}")
    log.info("webhook endpoint %s changed by %s", endpoint_id, who.name)
    return WebhookInfo(**_info(endpoint, await service.counts(endpoint.id)))


@router.delete("/webhooks/{endpoint_id}", tags=["webhooks"], status_code=204, responses=NOT_FOUND)
async def delete_webhook(request: Request, endpoint_id: IdPath, who: Admin) -> Response:
    """Remove the endpoint and its deliveries (pending ones are not sent)."""
    if not await _service(request).delete_endpoint(endpoint_id):
        raise ApiError(404, f"no webhook endpoint {endpoint_id!r}")
    log.info("webhook endpoint %s deleted by %s", endpoint_id, who.name)
    return Response(status_code=204)


@router.post(
    "/webhooks/{endpoint_id}/test", tags=["webhooks"], status_code=202, responses=NOT_FOUND
)
async def test_webhook(request: Request, endpoint_id: IdPath, _who: Admin) -> TestQueued:
    """Queue a ``webhook.test`` event for this endpoint (sent like any other)."""
    service = _service(request)
    await _known(service, endpoint_id)
    return TestQueued(delivery=service.send_test(endpoint_id))


@router.get("/webhooks/{endpoint_id}/deliveries", tags=["webhooks"], responses=NOT_FOUND)
async def webhook_deliveries(
    request: Request,
    endpoint_id: IdPath,
    _who: Admin,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[DeliveryInfo]:
    """The endpoint's latest deliveries, newest first (delivered and failed ones are kept
    ``webhooks.keep_days`` days)."""
    service = _service(request)
    await _known(service, endpoint_id)
    rows: list[Delivery] = await service.recent(endpoint_id, limit)
    return [DeliveryInfo.model_validate(r.to_json()) for r in rows]


# --- OpenAPI "webhooks": what receivers get ----------------------------------------------------


class CallRecordModel(BaseModel):
    """The finished call (``call.missed``, ``call.ended``), as the call journal keeps it."""

    id: str = Field(description="Stable call-record ID (the journal's key)")
    line: str
    phone: str = Field(description="MAC of the phone that owned the line")
    call_id: str
    direction: Literal["incoming", "outgoing", "internal"]
    remote_number: str | None
    remote_name: str | None
    started: float = Field(description="Unix time")
    answered: float | None
    ended: float
    ring_seconds: float
    talk_seconds: float
    outcome: str = Field(examples=["answered", "missed", "busy", "forwarded"])
    target: str | None
    cause: str | None = Field(examples=["normalClearing"])
    related: list[str]


class NoticeData(BaseModel):
    """The event itself (``CallNotice.to_json()``); absent fields are omitted."""

    type: str = Field(examples=["call.ringing"])
    at: float = Field(description="When it happened (Unix time)")
    line: str | None = Field(default=None, examples=["sip:100@pbx"])
    phone: str | None = Field(default=None, description="MAC", examples=["001565000001"])
    call_id: str | None = None
    direction: Literal["incoming", "outgoing", "internal"] | None = None
    remote_number: str | None = Field(default=None, examples=["+4989123456"])
    remote_name: str | None = None
    call: CallRecordModel | None = Field(
        default=None, description="call.missed, call.ended: the finished call"
    )
    data: dict[str, Any] | None = Field(
        default=None,
        description='dnd.changed: {"on": true}; forwarding.changed: {"type": '
        '"forwardImmediate", "on": true, "to": "200"}; phone.offline: {"reason": "..."}',
    )


class WebhookPayload(BaseModel):
    """The body of every delivery. Headers: ``X-Uacsta-Event`` (the type),
    ``X-Uacsta-Delivery`` (= ``id``), ``X-Uacsta-Timestamp`` (Unix seconds of the attempt),
    ``X-Uacsta-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>``."""

    id: str = Field(description="Delivery ID (UUID): the same on every retry; dedupe by it")
    event_id: str = Field(description="Event ID (UUID): shared by every endpoint's copy")
    type: str = Field(examples=["call.missed"])
    created: str = Field(description="When the event was queued (ISO 8601 UTC)")
    data: NoticeData


class TestData(BaseModel):
    endpoint: str
    message: str


class TestPayload(BaseModel):
    id: str
    event_id: str
    type: Literal["webhook.test"]
    created: str
    data: TestData


_DESCRIPTIONS = {
    "call.ringing": "An incoming call rings at a line.",
    "call.dialing": "A line starts an outgoing call.",
    "call.answered": "A call at a line is answered (connected).",
    "call.held": "A line puts a call on hold.",
    "call.retrieved": "A line takes a held call back.",
    "call.missed": "An incoming call ended unanswered: data.call is the journal row.",
    "call.ended": "A call ended at a line: data.call is the journal row.",
    "phone.online": "A phone's uaCSTA link is up (ready).",
    "phone.offline": "A phone's uaCSTA link is down (data.data.reason says why).",
    "dnd.changed": "Do-not-disturb switched at a line (data.data.on).",
    "forwarding.changed": "Call forwarding changed at a line (data.data: type, on, to).",
}

#: The OpenAPI ``webhooks`` section (included by :func:`uacsta.web.app.create_app`).
openapi_webhooks = APIRouter()


def _describe(event: str, description: str) -> None:
    async def delivery(body: WebhookPayload) -> None:
        """Answer 2xx within the timeout once stored; anything else is retried."""

    openapi_webhooks.add_api_route(
        event,
        delivery,
        methods=["POST"],
        summary=event,
        description=description + " Signed: see docs/webhooks.md.",
        status_code=200,
        operation_id=f"webhook_{event.replace('.', '_')}",
    )


for _event in EVENT_TYPES:
    _describe(_event, _DESCRIPTIONS.get(_event, ""))


async def _test_delivery(body: TestPayload) -> None:
    """Sent by "Send test" in the admin and ``POST /api/v1/webhooks/{id}/test``."""


openapi_webhooks.add_api_route(
    TEST_EVENT,
    _test_delivery,
    methods=["POST"],
    summary=TEST_EVENT,
    operation_id="webhook_webhook_test",
)
