"""Which device a CSTA request addresses, and how to rewrite it into the phone's own terms.

Clients may name a line by any alias (:mod:`uacsta.switch.devices`); the phone only knows its
own device IDs. For every request relayed to phones, the registry of services
(:data:`uacsta.csta.services.SUBJECT_FIELDS`) names the fields that carry the subject device (a
device ID or a connection ID), so routing is a dict lookup per request.
"""

from __future__ import annotations

from dataclasses import replace

from uacsta.csta import messages as m
from uacsta.csta.services import SUBJECT_FIELDS
from uacsta.csta.types import ConnectionID

__all__ = ["SUBJECT_FIELDS", "rewrite_subject", "service_name", "subject_of"]


def subject_of(request: m.CstaRequest) -> str | None:
    """The device text the request addresses, or None when it names none."""
    for name, kind in SUBJECT_FIELDS.get(type(request), ()):
        value = getattr(request, name)
        if value is None:
            continue
        if kind == "device":
            return str(value)
        if isinstance(value, ConnectionID) and value.device_id:
            return value.device_id
    return None


def rewrite_subject(request: m.CstaRequest, device_id: str) -> m.CstaRequest:
    """The request with every subject field naming the line as the phone does."""
    changes: dict[str, object] = {}
    for name, kind in SUBJECT_FIELDS.get(type(request), ()):
        value = getattr(request, name)
        if value is None:
            continue
        if kind == "device":
            changes[name] = device_id
        elif isinstance(value, ConnectionID) and value.device_id:
            changes[name] = replace(value, device_id=device_id)
    return replace(request, **changes) if changes else request  # type: ignore[arg-type]


def service_name(request: m.CstaMessage) -> str:
    return type(request).__name__
