"""Request and response bodies of the JSON API (``/api/v1``), as pydantic models.

They define the OpenAPI document at ``/docs``. Strings that end up in CSTA XML sent to a phone
(numbers, call IDs, device names) are checked here to be XML-safe text: bad input is a 422, not
a failure deep in the phone link.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from uacsta.csta.types import ForwardingType

MAX_TEXT = 255


def xml_safe(value: str) -> str:
    """Refuse text that cannot travel in a CSTA document (control characters, surrogates)."""
    for ch in value:
        if ch < " " or ch == "\x7f" or "\ud800" <= ch <= "\udfff" or ch in "\ufffe\uffff":
            raise ValueError(f"character U+{ord(ch):04X} is not allowed")
    if not value.strip():
        raise ValueError("must not be blank")
    return value


#: A device, number or call ID: 1-255 XML-safe characters.
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT), AfterValidator(xml_safe)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- errors -------------------------------------------------------------------------------------


class CstaErrorModel(BaseModel):
    category: str = Field(examples=["operation"])
    value: str | None = Field(examples=["invalidFeature"])


class ErrorBody(BaseModel):
    """Every error of the API: a human message, the CSTA error (if any) and the switch detail."""

    error: str = Field(description="What went wrong, for humans")
    csta_error: CstaErrorModel | None = Field(
        default=None, description="The CSTAErrorCode from the switching function or the phone"
    )
    detail: Any = Field(
        default=None,
        description="The switching function's reason (a string), or the list of invalid fields",
    )


# --- phones -------------------------------------------------------------------------------------


class LineConflict(BaseModel):
    device: str = Field(description="The line as the claiming phone reports it")
    claimant: str = Field(description="MAC of the phone that reports the line and is refused")
    owner: str = Field(description="MAC of the phone that keeps the line")


class Phone(BaseModel):
    mac: str = Field(examples=["001565000001"])
    vendor: str
    model: str | None = None
    firmware: str | None = None
    user_agent: str | None = None
    identity: str | None = None
    ip: str | None = None
    port: int | None = None
    transport: str | None = None
    first_seen: str | None = None
    last_login: str | None = None
    state: str = Field(description="offline, registered, linking, ready, failed or disabled")
    state_reason: str | None = None
    enabled: bool
    simulated: bool
    lines: list[str]
    online: bool = Field(description="The CSTA link to the phone is up (state ready)")
    line_conflicts: list[LineConflict] = Field(
        default_factory=list,
        description="Lines this phone reports that another phone keeps, or the reverse",
    )


class LineAssign(_Body):
    device: Text = Field(
        description="The line (device ID) the phone gets", examples=["sip:100@pbx"]
    )


class PhonePatch(_Body):
    enabled: bool


class TraceEntry(BaseModel):
    time: float = Field(description="Unix time")
    direction: Literal["in", "out"]
    kind: Literal["sip", "csta"]
    text: str


# --- devices ------------------------------------------------------------------------------------


class Device(BaseModel):
    device: str = Field(description="The line as the phone names it", examples=["sip:100@pbx"])
    phone: str = Field(description="MAC of the owning phone")
    extension: str | None = Field(examples=["100"])
    ready: bool = Field(description="The phone's CSTA link is up")


class CallRef(BaseModel):
    """A call at a device: the CSTA connection identifier."""

    call_id: str | None
    device_id: str | None


class CallState(CallRef):
    state: str | None = Field(description="alerting, connected, hold, initiated, ...")


class Snapshot(BaseModel):
    calls: list[CallState]


class CurrentCall(BaseModel):
    """A call up at a line now, as the server tracks it from the phone's events."""

    call_id: str
    line: str
    direction: str | None = Field(description="incoming, outgoing (None: not known yet)")
    state: str = Field(description="alerting, connected, hold, initiated, fail, ...")
    remote_number: str | None
    remote_name: str | None
    started: float = Field(description="epoch seconds")
    answered: float | None = Field(description="epoch seconds; None: not answered")
    held: bool
    internal: bool = Field(description="the other party is another line of this server")
    related: list[str] = Field(description="call IDs of linked calls (consultation, conference)")


class Participant(BaseModel):
    device: str | None
    call_id: str | None
    device_id: str | None
    state: str | None


class CallSnapshot(BaseModel):
    devices: list[Participant]


class ActionResult(BaseModel):
    """A request the phone carried out; ``data`` holds the fields of its positive response."""

    ok: bool = True
    service: str = Field(examples=["HoldCall"])
    data: dict[str, Any] = Field(default_factory=dict)


# --- request bodies -----------------------------------------------------------------------------


class Destination(_Body):
    to: Text = Field(description="Number or device to call", examples=["200"])


class Digits(_Body):
    digits: str = Field(pattern=r"^[0-9*#A-Da-d]{1,64}$", examples=["12#"])


class TwoCalls(_Body):
    held_call: Text = Field(description="call_id of the held call")
    active_call: Text = Field(description="call_id of the active call")


class Dnd(_Body):
    on: bool


class ForwardingEntry(BaseModel):
    type: str | None = Field(examples=["forwardImmediate"])
    on: bool | None
    to: str | None


class ForwardingList(BaseModel):
    forwarding: list[ForwardingEntry]


class ForwardingSet(_Body):
    type: ForwardingType = ForwardingType.FORWARD_IMMEDIATE
    on: bool
    to: Text | None = Field(default=None, examples=["300"])


# --- tokens -------------------------------------------------------------------------------------


Scope = Literal["read", "control", "admin"]


class TokenCreate(_Body):
    name: Annotated[str, Field(min_length=1, max_length=128), AfterValidator(xml_safe)]
    scopes: Annotated[
        list[Scope],
        Field(
            min_length=1,
            max_length=3,
            description="read: GETs and events; control: calls, DND, forwarding; "
            "admin: phones, status, tokens",
        ),
    ] = ["read", "control", "admin"]
    expires: AwareDatetime | None = Field(
        default=None, description="When the token stops working (ISO 8601 with offset)"
    )


class TokenInfo(BaseModel):
    id: str
    name: str
    created: str | None = None
    scopes: list[str] = Field(default_factory=lambda: ["admin", "control", "read"])
    expires: str | None = Field(default=None, description="ISO 8601 UTC; null: never")


class TokenCreated(BaseModel):
    id: str
    name: str
    scopes: list[str]
    expires: datetime | None = None
    token: str = Field(description="Shown once; send it as 'Authorization: Bearer <token>'")
