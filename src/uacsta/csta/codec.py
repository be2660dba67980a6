"""ECMA-323 XML <-> :mod:`uacsta.csta.messages` (ECMA-323 §8 encoding rules, editions 2-6).

Owns the wire form of CSTA messages. One generic encoder and one generic decoder walk specs
compiled once at import time from the dataclass fields (their annotations and
:func:`~uacsta.csta.types.xml_meta` metadata), so adding a message is declaring a dataclass.

Decoding rules (tolerant in what it accepts):

- any namespace, matched by local name: ed2-ed6, none, misspelled hosts, ``/privN`` suffixes;
  :func:`decode_with_edition` reports the edition it recognised so the answer can use it;
- unknown roots become :class:`~uacsta.csta.messages.UnknownMessage`; unknown child elements
  are ignored; absent elements leave the field ``None`` (or empty);
- text is trimmed of XML whitespace; a present but unreadable boolean or integer raises
  :class:`~uacsta.csta.errors.CstaDecodeError`, the only exception :func:`decode` raises for
  any input; hostile XML is refused by :func:`~uacsta.csta.xmlparse.parse_document`.

Encoding writes the canonical form in one edition's namespace; ``decode(encode(m, e)) == m``.
Strings that XML cannot carry (control characters, lone surrogates) raise ``ValueError``: that
is a local bug, not a peer's.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import types
import typing
from collections.abc import Callable
from copy import deepcopy
from typing import Any, Final, get_args, get_origin

from lxml import etree

from uacsta.csta.errors import CstaDecodeError
from uacsta.csta.messages import (
    MESSAGE_CLASSES,
    CSTAErrorCode,
    CstaMessage,
    UnknownMessage,
    response_class_for,
)
from uacsta.csta.types import ConnectionID, DeviceIdentifier, PassThroughEnum
from uacsta.csta.xmlparse import parse_document

__all__ = [
    "MESSAGE_CLASSES",
    "Edition",
    "decode",
    "decode_with_edition",
    "edition_for_namespace",
    "encode",
    "response_class_for",
]

_NS_BASE: Final = "http://www.ecma-international.org/standards/ecma-323/csta/ed"


class Edition(enum.Enum):
    """ECMA-323 edition, identified by its XML namespace (``NONE``: no namespace at all)."""

    ED2 = _NS_BASE + "2"
    ED3 = _NS_BASE + "3"
    ED4 = _NS_BASE + "4"
    ED5 = _NS_BASE + "5"
    ED6 = _NS_BASE + "6"
    NONE = ""

    @property
    def namespace(self) -> str | None:
        return self.value or None


_EDITION_BY_NUMBER: Final = {
    "2": Edition.ED2,
    "3": Edition.ED3,
    "4": Edition.ED4,
    "5": Edition.ED5,
    "6": Edition.ED6,
}
_ED_RE: Final = re.compile(r".*ed(\d+)")
_edition_cache: dict[str, Edition] = {}


def edition_for_namespace(namespace: str | None) -> Edition:
    """Best guess of the edition behind a namespace: its last ``edN``, else ED3 (NONE if absent)."""
    if not namespace:
        return Edition.NONE
    found = _edition_cache.get(namespace)
    if found is None:
        match = _ED_RE.match(namespace)
        found = _EDITION_BY_NUMBER.get(match.group(1), Edition.ED3) if match else Edition.ED3
        if len(_edition_cache) < 256:  # bounded: namespaces come from peers
            _edition_cache[namespace] = found
    return found


# --- text conversions ------------------------------------------------------------------------

_XML_WS: Final = " \t\r\n"
# Characters needing an escape, or not allowed in XML 1.0 at all.
_SPECIAL_RE: Final = re.compile("[&<>\r]|[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_INVALID_RE: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_INT_RE: Final = re.compile(r"[+-]?[0-9]{1,18}")
_TRUE: Final = frozenset({"true", "1"})
_FALSE: Final = frozenset({"false", "0"})
_DEVICE_ID_NAMES: Final = frozenset({"deviceIdentifier", "deviceID"})


def _escape(text: str) -> str:
    if _SPECIAL_RE.search(text) is None:
        return text
    bad = _INVALID_RE.search(text)
    if bad is not None:
        raise ValueError(f"character {bad.group()!r} cannot be carried in XML")
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    )


def _local(tag: str) -> str:
    return tag[tag.find("}") + 1 :]


def _text(el: etree._Element) -> str:
    text = el.text
    return "" if text is None else text.strip(_XML_WS)


def _dec_bool(el: etree._Element) -> bool:
    text = _text(el)
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise CstaDecodeError(f"<{_local(el.tag)}> is not a boolean: {text[:40]!r}")


def _dec_int(el: etree._Element) -> int:
    text = _text(el)
    if _INT_RE.fullmatch(text) is None:
        raise CstaDecodeError(f"<{_local(el.tag)}> is not an integer: {text[:40]!r}")
    return int(text)


def _dec_conn(el: etree._Element) -> ConnectionID:
    call_id: str | None = None
    device_id: str | None = None
    for child in el:
        tag = child.tag
        if tag.__class__ is not str:
            continue
        name = tag[tag.find("}") + 1 :]
        if name == "callID":
            call_id = _text(child)
        elif name == "deviceID":
            device_id = _text(child)
    return ConnectionID(call_id, device_id)


_DEVICE_KINDS: Final[dict[str, Any]] = {
    "notKnown": "notKnown",
    "notRequired": "notRequired",
    "restricted": "restricted",
}


def _dec_device(el: etree._Element) -> DeviceIdentifier:
    for child in el:
        tag = child.tag
        if tag.__class__ is not str:
            continue
        name = tag[tag.find("}") + 1 :]
        if name in _DEVICE_ID_NAMES:
            return DeviceIdentifier(_text(child))
        kind = _DEVICE_KINDS.get(name)
        if kind is not None:
            return DeviceIdentifier(None, kind)
    # Some phones send the identifier as plain text: <device>sip:...</device>.
    return DeviceIdentifier(_text(el) or None)


def _dec_flags(el: etree._Element) -> frozenset[str]:
    names = set()
    for child in el.iter():
        if child is el or len(child) or child.tag.__class__ is not str:
            continue
        text = _text(child)
        if text in _TRUE:
            names.add(_local(child.tag))
    return frozenset(names)


def _dec_extensions(el: etree._Element) -> bytes:
    # Keep vendor data verbatim but make CSTA-namespace elements unqualified, so the bytes are
    # the same whatever edition carried them and can be re-emitted inside any edition.
    tag = el.tag
    copy = deepcopy(el)
    copy.tail = None
    if tag.startswith("{"):
        prefix = tag[: tag.find("}") + 1]
        cut = len(prefix)
        for node in copy.iter():
            node_tag = node.tag
            if node_tag.__class__ is str and node_tag.startswith(prefix):
                node.tag = node_tag[cut:]
        etree.cleanup_namespaces(copy)
    return etree.tostring(copy, encoding="UTF-8", xml_declaration=False)


def _enc_text(value: str) -> str:
    return _escape(value)


def _enc_bool(value: bool) -> str:
    return "true" if value else "false"


def _enc_int(value: int) -> str:
    return str(int(value))


def _enc_conn(value: ConnectionID) -> str:
    out = ""
    if value.call_id is not None:
        out = "<callID>" + _escape(value.call_id) + "</callID>" if value.call_id else "<callID/>"
    if value.device_id is not None:
        out += (
            "<deviceID>" + _escape(value.device_id) + "</deviceID>"
            if value.device_id
            else "<deviceID/>"
        )
    return out


def _enc_device(value: DeviceIdentifier) -> str:
    if value.kind != "deviceIdentifier":
        return "<" + value.kind + "/>"
    if value.value is None:
        return ""
    if not value.value:
        return "<deviceIdentifier/>"
    return "<deviceIdentifier>" + _escape(value.value) + "</deviceIdentifier>"


# Categories used when encoding capability flags (ECMA-323 GetCSTAFeaturesResponse); decoding
# does not depend on them.
_SERVICE_CATEGORIES: Final[dict[str, tuple[str, ...]]] = {
    "capabilityExchangeServices": (
        "getCSTAFeatures",
        "getLogicalDeviceInformation",
        "getPhysicalDeviceInformation",
        "getSwitchingFunctionDevices",
    ),
    "systemServices": (
        "requestSystemStatus",
        "systemRegister",
        "systemRegisterCancel",
        "systemStatus",
        "swFunctionDevicesChanged",
        "switchingFunctionDevices",
    ),
    "monitoringServices": ("monitorStart", "monitorStop"),
    "snapshotServices": ("snapshotCall", "snapshotDevice"),
    "callControlServices": (
        "alternateCall",
        "answerCall",
        "clearCall",
        "clearConnection",
        "conferenceCall",
        "consultationCall",
        "deflectCall",
        "dialDigits",
        "directedPickupCall",
        "holdCall",
        "makeCall",
        "reconnectCall",
        "retrieveCall",
        "singleStepConferenceCall",
        "singleStepTransferCall",
        "transferCall",
    ),
    "callAssociatedServices": ("generateDigits",),
    "physicalDeviceServices": ("getMessageWaitingIndicator", "setMessageWaitingIndicator"),
    "logicalDeviceServices": (
        "getDoNotDisturb",
        "getForwarding",
        "setDoNotDisturb",
        "setForwarding",
    ),
}
_EVENT_CATEGORIES: Final[dict[str, tuple[str, ...]]] = {
    "callControlEvents": (
        "callCleared",
        "conferenced",
        "connectionCleared",
        "delivered",
        "digitsDialed",
        "diverted",
        "established",
        "failed",
        "held",
        "networkCapabilitiesChanged",
        "networkReached",
        "offered",
        "originated",
        "queued",
        "retrieved",
        "serviceInitiated",
        "transferred",
    ),
    "callAssociatedEvents": ("digitsGenerated",),
    "physicalDeviceFeatureEvents": ("messageWaiting",),
    "logicalDeviceFeatureEvents": ("doNotDisturb", "forwarding"),
    "deviceMaintenanceEvents": ("backInService", "outOfService"),
}


def _flags_encoder(categories: dict[str, tuple[str, ...]]) -> Callable[[frozenset[str]], str]:
    category_of = {name: cat for cat, names in categories.items() for name in names}
    order = list(categories)

    def encode_flags(value: frozenset[str]) -> str:
        grouped: dict[str, list[str]] = {}
        loose: list[str] = []
        for name in sorted(value):
            if not _is_xml_name(name):
                raise ValueError(f"{name!r} is not an XML element name")
            cat = category_of.get(name)
            if cat is None:
                loose.append(name)
            else:
                grouped.setdefault(cat, []).append(name)
        parts = []
        for cat in order:
            names = grouped.get(cat)
            if names:
                parts.append(f"<{cat}>" + "".join(f"<{n}>true</{n}>" for n in names) + f"</{cat}>")
        parts.extend(f"<{n}>true</{n}>" for n in loose)
        return "".join(parts)

    return encode_flags


_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


def _is_xml_name(name: str) -> bool:
    return _NAME_RE.fullmatch(name) is not None


# --- compiled specs --------------------------------------------------------------------------

# Decode plan: local element name -> (mode, target, conv).
#   _SET:    target = attribute name, conv(element) -> value
#   _APPEND: same, value appended to a list (turned into a tuple at the end)
#   _WRAP:   target = nested plan for a wrapper element, conv unused
_SET: Final = 0
_APPEND: Final = 1
_WRAP: Final = 2
_Plan = dict[str, tuple[int, Any, Any]]

# Encode ops (tuples, first item the kind):
#   (_LEAF, attr, enc, "<t>", "</t>", "<t/>")
#   (_LIST, attr, enc_item, "<t>", "</t>", "<i>", "</i>", "<i/>")
#   (_GROUP, None, sub_ops, "<t>", "</t>")
#   (_FLAGS, attr, enc, "<t>", "</t>", "<t/>")
_LEAF: Final = 0
_LIST: Final = 1
_GROUP: Final = 2
_FLAGS: Final = 3  # like _LEAF, but an empty set is left out
_Ops = list[tuple[Any, ...]]


def _camel(name: str) -> str:
    words = name.split("_")
    special = {"id": "ID", "dn": "DN", "csta": "CSTA"}
    return words[0] + "".join(special.get(w, w.capitalize()) for w in words[1:])


def _enum_decoder(enum_cls: type[PassThroughEnum]) -> Callable[[etree._Element], str]:
    members: dict[str, str] = {m.value: m for m in enum_cls}

    def decode_enum(el: etree._Element) -> str:
        text = _text(el)
        return members.get(text, text)

    return decode_enum


def _field_kind(hint: Any) -> tuple[str, Any]:
    origin = get_origin(hint)
    if origin is tuple:
        return "list", get_args(hint)[0]
    if origin is frozenset:
        return "flags", None
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        for arg in args:
            if isinstance(arg, type) and issubclass(arg, PassThroughEnum):
                return "enum", arg
        (hint,) = args
    if hint is bool:
        return "bool", None
    if hint is int:
        return "int", None
    if hint is str:
        return "text", None
    if hint is ConnectionID:
        return "conn", None
    if hint is DeviceIdentifier:
        return "device", None
    if dataclasses.is_dataclass(hint):
        return "struct", hint
    raise TypeError(f"no XML mapping for field type {hint!r}")


_SIMPLE: Final[dict[str, tuple[Callable[[etree._Element], Any], Callable[[Any], str]]]] = {
    "text": (_text, _enc_text),
    "bool": (_dec_bool, _enc_bool),
    "int": (_dec_int, _enc_int),
    "conn": (_dec_conn, _enc_conn),
    "device": (_dec_device, _enc_device),
}


class _Spec:
    """Compiled decode plan and encode ops of one dataclass (message or nested structure)."""

    __slots__ = ("cls", "list_attrs", "ops", "plan")

    def __init__(self, cls: type[Any]) -> None:
        self.cls = cls
        self.plan: _Plan = {}
        self.ops: _Ops = []
        self.list_attrs: tuple[str, ...] = ()
        hints = typing.get_type_hints(cls)
        list_attrs: list[str] = []
        for f in dataclasses.fields(cls):
            if f.name == "extensions":
                continue  # handled by the message level, always last
            meta: dict[str, Any] = dict(f.metadata.get("xml", {}))
            tag: str = meta.get("tag") or _camel(f.name)
            kind, arg = _field_kind(hints[f.name])
            plan, ops = self._descend(meta.get("path", ()))
            names = (tag, *meta.get("aliases", ()))
            if kind == "list":
                item = meta.get("item")
                if not item:
                    raise TypeError(f"{cls.__name__}.{f.name}: list fields need an item name")
                sub = _spec_for(arg)
                list_attrs.append(f.name)
                item_plan: _Plan = {item: (_APPEND, f.name, sub.decode_struct)}
                for name in names:
                    plan[name] = (_WRAP, item_plan, None)
                item_tags = (f"<{item}>", f"</{item}>", f"<{item}/>")
                ops.append((_LIST, f.name, sub.encode_inner, f"<{tag}>", f"</{tag}>", *item_tags))
                continue
            dec: Callable[[etree._Element], Any]
            enc: Callable[[Any], str]
            if kind == "struct":
                sub = _spec_for(arg)
                dec, enc = sub.decode_struct, sub.encode_inner
            elif kind == "enum":
                dec, enc = _enum_decoder(arg), _enc_text
            elif kind == "flags":
                cats = _EVENT_CATEGORIES if "event" in f.name else _SERVICE_CATEGORIES
                if "filter" in f.name:
                    cats = {}
                dec, enc = _dec_flags, _flags_encoder(cats)
            else:
                dec, enc = _SIMPLE[kind]
            for name in names:
                plan[name] = (_SET, f.name, dec)
            op_kind = _FLAGS if kind == "flags" else _LEAF
            ops.append((op_kind, f.name, enc, f"<{tag}>", f"</{tag}>", f"<{tag}/>"))
        self.list_attrs = tuple(list_attrs)

    def _descend(self, path: tuple[str, ...]) -> tuple[_Plan, _Ops]:
        plan, ops = self.plan, self.ops
        for wrapper in path:
            node = plan.get(wrapper)
            if node is None:
                node = (_WRAP, {}, None)
                plan[wrapper] = node
            plan = node[1]
            group = next((op for op in ops if op[0] == _GROUP and op[3] == f"<{wrapper}>"), None)
            if group is None:
                group = (_GROUP, None, [], f"<{wrapper}>", f"</{wrapper}>")
                ops.append(group)
            ops = group[2]
        return plan, ops

    def collect(self, el: etree._Element) -> dict[str, Any]:
        values: dict[str, Any] = {}
        _fill(el, self.plan, values)
        for attr in self.list_attrs:
            found = values.get(attr)
            if found is not None:
                values[attr] = tuple(found)
        return values

    def decode_struct(self, el: etree._Element) -> Any:
        return self.cls(**self.collect(el))

    def encode_inner(self, obj: Any) -> str:
        parts: list[str] = []
        _emit(obj, self.ops, parts)
        return "".join(parts)


def _fill(el: etree._Element, plan: _Plan, values: dict[str, Any]) -> None:
    for child in el:
        tag = child.tag
        if tag.__class__ is not str:
            continue
        node = plan.get(tag[tag.find("}") + 1 :])
        if node is None:
            continue  # unknown elements are ignored (tolerant decoding)
        mode, target, conv = node
        if mode == _SET:
            values[target] = conv(child)
        elif mode == _APPEND:
            found = values.get(target)
            if found is None:
                values[target] = [conv(child)]
            else:
                found.append(conv(child))
        else:
            _fill(child, target, values)


def _emit(obj: Any, ops: _Ops, parts: list[str]) -> None:
    for op in ops:
        kind = op[0]
        if kind == _LEAF:
            value = getattr(obj, op[1])
            if value is None:
                continue
            inner = op[2](value)
            if inner:
                parts.append(op[3])
                parts.append(inner)
                parts.append(op[4])
            else:
                parts.append(op[5])
        elif kind == _LIST:
            items = getattr(obj, op[1])
            if not items:
                continue
            parts.append(op[3])
            enc = op[2]
            for item in items:
                inner = enc(item)
                if inner:
                    parts.append(op[5])
                    parts.append(inner)
                    parts.append(op[6])
                else:
                    parts.append(op[7])
            parts.append(op[4])
        elif kind == _FLAGS:
            value = getattr(obj, op[1])
            if value:
                parts.append(op[3])
                parts.append(op[2](value))
                parts.append(op[4])
        else:
            sub: list[str] = []
            _emit(obj, op[2], sub)
            if sub:
                parts.append(op[3])
                parts.extend(sub)
                parts.append(op[4])


_SPECS: dict[type[Any], _Spec] = {}


def _spec_for(cls: type[Any]) -> _Spec:
    spec = _SPECS.get(cls)
    if spec is None:
        spec = _SPECS[cls] = _Spec(cls)
    return spec


# --- CSTAErrorCode: a choice of category elements, value as text or as an empty element -----


def _decode_error(root: etree._Element) -> CSTAErrorCode:
    extensions: bytes | None = None
    category: str | None = None
    value: str | None = None
    for child in root:
        tag = child.tag
        if tag.__class__ is not str:
            continue
        name = _local(tag)
        if name == "extensions":
            extensions = _dec_extensions(child)
        elif category is None:
            category = name
            value = _text(child) or None
            if value is None:
                # snom: <operation><invalidDeviceID/></operation>
                for grandchild in child:
                    if grandchild.tag.__class__ is str:
                        value = _local(grandchild.tag)
                        break
    if category is None:
        return CSTAErrorCode(category="unspecified", value=None, extensions=extensions)
    error = CSTAErrorCode.of(category, value)
    return error if extensions is None else dataclasses.replace(error, extensions=extensions)


def _encode_error(message: CSTAErrorCode) -> str:
    category = str(message.category)
    if not _is_xml_name(category):
        raise ValueError(f"{category!r} is not an XML element name")
    if message.value is None or message.value == "":
        return f"<{category}/>"
    return f"<{category}>{_escape(message.value)}</{category}>"


# --- public API ------------------------------------------------------------------------------

_Decoder = Callable[[etree._Element], CstaMessage]
_DECODERS: dict[str, _Decoder] = {}
_ENCODERS: dict[type[CstaMessage], tuple[str, Callable[[Any], str]]] = {}


def _message_decoder(spec: _Spec) -> _Decoder:
    cls = spec.cls
    plan = dict(spec.plan)
    plan["extensions"] = (_SET, "extensions", _dec_extensions)
    list_attrs = spec.list_attrs

    def decode_message(root: etree._Element) -> CstaMessage:
        values: dict[str, Any] = {}
        _fill(root, plan, values)
        for attr in list_attrs:
            found = values.get(attr)
            if found is not None:
                values[attr] = tuple(found)
        message: CstaMessage = cls(**values)
        return message

    return decode_message


def _register() -> None:
    for name, cls in MESSAGE_CLASSES.items():
        if cls is CSTAErrorCode:
            decoder: _Decoder = _decode_error
            encoder: Callable[[Any], str] = _encode_error
        else:
            spec = _spec_for(cls)
            decoder, encoder = _message_decoder(spec), spec.encode_inner
        for root_name in (name, *cls.XML_ALIASES):
            _DECODERS[root_name] = decoder
        _ENCODERS[cls] = (name, encoder)


_register()


def decode_with_edition(data: bytes) -> tuple[CstaMessage, Edition]:
    """Decode one CSTA document and report the edition its namespace names.

    Raises :class:`CstaDecodeError` (and nothing else) for input that is not acceptable XML.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    try:
        root = parse_document(data)
    except CstaDecodeError:
        raise
    except (etree.LxmlError, LookupError, UnicodeError) as exc:
        raise CstaDecodeError(f"unreadable XML: {exc}") from exc
    tag = root.tag
    if tag.__class__ is not str:
        raise CstaDecodeError("document has no root element")
    brace = tag.find("}")
    name = tag[brace + 1 :]
    edition = edition_for_namespace(tag[1:brace] if brace > 0 else None)
    decoder = _DECODERS.get(name)
    if decoder is None:
        return UnknownMessage(name=name, xml=data), edition
    return decoder(root), edition


def decode(data: bytes) -> CstaMessage:
    """Decode one CSTA document (any edition); see :func:`decode_with_edition`."""
    return decode_with_edition(data)[0]


_XML_DECL: Final = '<?xml version="1.0" encoding="UTF-8"?>'


def encode(message: CstaMessage, edition: Edition = Edition.ED3) -> bytes:
    """Encode a message as a UTF-8 document in ``edition``'s namespace.

    :class:`UnknownMessage` is returned as the bytes it was decoded from.
    """
    if isinstance(message, UnknownMessage):
        return message.xml
    try:
        name, encode_inner = _ENCODERS[type(message)]
    except KeyError:
        raise TypeError(f"{type(message).__name__} is not a registered CSTA message") from None
    body = encode_inner(message)
    extensions = message.extensions
    if extensions is not None:
        if not extensions.startswith(b"<extensions"):
            raise ValueError("extensions must be a whole <extensions> element")
        body += extensions.decode("utf-8")
    namespace = edition.value
    head = f'{_XML_DECL}<{name} xmlns="{namespace}"' if namespace else f"{_XML_DECL}<{name}"
    if body:
        return f"{head}>{body}</{name}>".encode()
    return f"{head}/>".encode()
