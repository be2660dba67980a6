"""CSTA messages as JSON for the JSON CSTA gateway (REST and WebSocket), generically from fields.

No per-message code: a message (or any nested ECMA-323 value) becomes a JSON object of its
fields. :class:`ConnectionID` is ``{"call_id", "device_id"}``, :class:`DeviceIdentifier` its
value (``null`` when not known or restricted), enums their standard string, tuples lists,
``frozenset`` sorted lists, ``extensions`` (private data) the XML text. A new message class or
field in :mod:`uacsta.csta.messages` appears in the API without touching this module.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from uacsta.csta import messages as m
from uacsta.csta.types import ConnectionID, DeviceIdentifier

__all__ = ["error_json", "event_data", "to_json"]

#: Fields that only make sense between uacsta and the phone, left out of API events.
_INTERNAL_FIELDS = frozenset({"monitor_cross_ref_id"})


def to_json(value: Any) -> Any:
    """Any value of the CSTA message model as JSON-compatible data."""
    match value:
        case None | bool() | int() | float():
            return value
        case enum.Enum():  # before str: PassThroughEnum members are str too
            return value.value
        case str():
            return str(value)
        case bytes():
            return value.decode("utf-8", "replace")
        case ConnectionID():
            return {"call_id": value.call_id, "device_id": value.device_id}
        case DeviceIdentifier():
            return value.value
        case tuple() | list():
            return [to_json(v) for v in value]
        case frozenset() | set():
            return sorted((to_json(v) for v in value), key=str)
        case dict():
            return {str(k): to_json(v) for k, v in value.items()}
        case _ if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return _fields(value, frozenset())
    raise TypeError(f"no JSON form for {type(value).__name__}")


def _fields(obj: Any, skip: frozenset[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if f.name in skip:
            continue
        value = getattr(obj, f.name)
        if f.name == "extensions" and value is None:
            continue  # private data only when the phone sent some
        out[f.name] = to_json(value)
    return out


def event_data(event: m.CstaEvent) -> dict[str, Any]:
    """The fields of an event for API clients (the monitor cross-ref stays internal)."""
    return _fields(event, _INTERNAL_FIELDS)


def error_json(error: m.CSTAErrorCode) -> dict[str, Any]:
    """``{"category": ..., "value": ...}`` of a CSTAErrorCode."""
    return {"category": to_json(error.category), "value": to_json(error.value)}
