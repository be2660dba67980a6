"""What the call tracker tells the rest of the server: journal rows and normalized notices.

A :class:`CallRecord` is one call on one line, written once the call has ended there (the
call journal's row). A :class:`CallNotice` is a plain-words event (``call.ringing``,
``call.answered``...) for the WebSocket and webhooks, so an application needs no CSTA
knowledge. Both are plain values; the tracker (:mod:`uacsta.switch.calls`) makes them, the
journal store, the webhook outbox and the gateways carry them. Times are seconds since the
epoch (UTC), as the adapter gives them to the tracker.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CallNotice", "CallRecord", "Direction", "NoticeType", "Outcome"]


class Direction(enum.Enum):
    """Seen from the line: a call that came in, went out, or stayed between our own lines."""

    INCOMING = "incoming"
    OUTGOING = "outgoing"
    INTERNAL = "internal"


class Outcome(enum.Enum):
    """How a call ended on the line (the journal's ``outcome``)."""

    ANSWERED = "answered"
    #: Incoming, rang, nobody answered here or anywhere and the caller gave up.
    MISSED = "missed"
    #: The line was busy (incoming) or the far end was (outgoing).
    BUSY = "busy"
    #: The user declined the ringing call.
    REJECTED = "rejected"
    #: Outgoing, ended by us before the far end answered.
    CANCELLED = "cancelled"
    #: Forwarded by the line's forwarding settings (``target`` names where to).
    FORWARDED = "forwarded"
    #: Deflected by the user while ringing (``target`` names where to).
    DEFLECTED = "deflected"
    #: Transferred away after talking (``target`` names to whom).
    TRANSFERRED = "transferred"
    #: Rang here and was picked up by another device.
    ANSWERED_ELSEWHERE = "answered_elsewhere"
    #: Outgoing, the far end did not answer or could not be reached.
    UNANSWERED = "unanswered"
    #: The call failed for another reason (the cause is in ``cause``).
    FAILED = "failed"
    #: The phone was lost (restart, network) while the call was up.
    LOST_WITH_PHONE = "lost_with_phone"


class NoticeType(enum.Enum):
    """The normalized event names (WebSocket ``type`` and webhook ``event``)."""

    CALL_RINGING = "call.ringing"
    CALL_DIALING = "call.dialing"
    CALL_ANSWERED = "call.answered"
    CALL_HELD = "call.held"
    CALL_RETRIEVED = "call.retrieved"
    CALL_MISSED = "call.missed"
    CALL_ENDED = "call.ended"
    PHONE_ONLINE = "phone.online"
    PHONE_OFFLINE = "phone.offline"
    DND_CHANGED = "dnd.changed"
    FORWARDING_CHANGED = "forwarding.changed"


@dataclass(frozen=True, kw_only=True, slots=True)
class CallRecord:
    """One call on one line, as the journal keeps it."""

    #: Unique and stable (the tracker's): the journal's primary key and webhook idempotency.
    id: str
    line: str
    #: The phone (MAC) that owned the line during the call.
    phone: str
    #: The call ID as clients saw it (the switch's call-ID space).
    call_id: str
    direction: Direction
    remote_number: str | None = None
    remote_name: str | None = None
    started: float
    answered: float | None = None
    ended: float
    outcome: Outcome
    #: Where the call went (forwarded, deflected, transferred to X; answered elsewhere by X).
    target: str | None = None
    #: The CSTA cause of the end, as the phone reported it (``normalClearing``, ``busy``...).
    cause: str | None = None
    #: Call IDs of linked calls (consultation, transfer, conference), client space.
    related: tuple[str, ...] = ()
    #: The far end is another line of this server (``direction`` stays the line's view:
    #: the caller's record is outgoing, the called line's incoming).
    internal: bool = False

    @property
    def ring_seconds(self) -> float:
        """Seconds from the start until answered (or until the end when never answered)."""
        return (self.answered if self.answered is not None else self.ended) - self.started

    @property
    def talk_seconds(self) -> float:
        """Seconds from the answer until the end (0 when never answered)."""
        return 0.0 if self.answered is None else self.ended - self.answered

    def to_json(self) -> dict[str, Any]:
        """The record as the API, CSV export and webhooks write it (times as epoch seconds)."""
        return {
            "id": self.id,
            "line": self.line,
            "phone": self.phone,
            "call_id": self.call_id,
            "direction": self.direction.value,
            "remote_number": self.remote_number,
            "remote_name": self.remote_name,
            "started": self.started,
            "answered": self.answered,
            "ended": self.ended,
            "ring_seconds": round(self.ring_seconds, 3),
            "talk_seconds": round(self.talk_seconds, 3),
            "outcome": self.outcome.value,
            "target": self.target,
            "cause": self.cause,
            "related": list(self.related),
            "internal": self.internal,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class CallNotice:
    """A normalized event about a call, a phone, DND or forwarding."""

    type: NoticeType
    #: When it happened (epoch seconds).
    at: float
    line: str | None = None
    phone: str | None = None
    call_id: str | None = None
    direction: Direction | None = None
    remote_number: str | None = None
    remote_name: str | None = None
    #: The finished call (``call.missed``, ``call.ended``).
    record: CallRecord | None = None
    #: Type-specific facts (``dnd.changed``: ``{"on": true}``; ``forwarding.changed``:
    #: ``{"type": "forwardImmediate", "on": true, "to": "200"}``; ``phone.offline``:
    #: ``{"reason": "..."}``).
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type.value, "at": self.at}
        for name in ("line", "phone", "call_id", "remote_number", "remote_name"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.direction is not None:
            out["direction"] = self.direction.value
        if self.record is not None:
            out["call"] = self.record.to_json()
        if self.data:
            out["data"] = dict(self.data)
        return out
