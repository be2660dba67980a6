"""Every message uacsta writes, checked against the ECMA-285 ASN.1 it claims to follow.

The oracle is ``reference/ecma-285-asn1/`` (read at test time by :mod:`tests.csta.asn1schema`),
never the codec: for each class in ``MESSAGE_CLASSES`` the test builds instances with every field
set (each enumeration member and each alternative the model allows, across the instances), and
then each optional field left out in turn (where the model spreads one CHOICE over several
fields, the codec writes the first one set; leaving it out shows the next; these instances are
not held to mandatory components and are encoded in one edition), encodes them with
:func:`uacsta.csta.codec.encode`, parses the XML with lxml and walks it against the ASN.1 type
of the message:

- a request ``Name`` is the ARGUMENT of OPERATION ``name``, ``NameResponse`` its RESULT,
  ``XxxEvent`` the type ``XxxEvent`` (as CSTA-event-report-definitions imports it),
  ``CSTAErrorCode`` the PARAMETER of ERROR ``universalFailure`` (UniversalFailure);
- every child element is a component of the SEQUENCE / SET there, SEQUENCE children come in
  ASN.1 order, mandatory components are present, a CHOICE is exactly one alternative's
  element, ENUMERATED text is one of the names, BIT STRING flags are named bits with a boolean
  value, and nothing else appears.

ECMA-323 XML rules that differ from a naive reading of the ASN.1 (each one is applied here,
and only these):

1. ``DeviceID`` is text (attributes allowed), not its SEQUENCE: ECMA-323 writes a device
   identifier as a string (snom and 3CX captures: ``<callingDevice>sip:…</callingDevice>``,
   ``<deviceObject>sip:…</deviceObject>``, ``<deviceID>sip:…</deviceID>``).
2. ``ConnectionID`` is ``callID`` and/or ``deviceID`` children, in that order: the ``both``
   alternative is flattened and ``LocalDeviceID`` is written as its text (every capture:
   ``<connection><callID>2</callID><deviceID>…</deviceID></connection>``).
3. ``CSTACommonArguments`` is the ``extensions`` element and ``CSTAPrivateData`` may appear
   as ``privateData`` in its place (deployed peers put it directly under the root,
   ``real-world-dialects.md``); their content is vendor data and is not checked.
4. SEQUENCE OF items are elements whose name ECMA-323's schema gives
   (``connectionListItem``, ``forwardListItem``, ``snapshotDeviceResponseInfo``,
   ``deviceEntry``, ``localConnectionState`` …): any single item name is accepted, the
   item's content is checked against the item type.
5. Events carry ``monitorCrossRefID`` first: it is CSTAEventReportArgument's
   ``crossRefIdentifier``, the event's fields follow (ECMA-323 flattens the report into one
   ``<XxxEvent>`` root; every capture in the references starts events with it).
6. A component ``crossRefIdentifier`` of type ``MonitorCrossRefID`` is written
   ``monitorCrossRefID`` (MonitorStartResponse and MonitorStop in the snom and Yealink
   captures); ECMA-323 spells ``numberdialed`` (RedirectionDeviceID) ``numberDialed`` and
   ``actualmonitorFilter`` (MonitorStartResult) ``actualMonitorFilter``.
7. A result that is ``CHOICE { extensions, noData }`` is an empty ``<NameResponse/>`` (or one
   holding only ``extensions``), as the reference README states from real captures.
8. ECMA-285 abbreviates four operation names that ECMA-323 roots spell in full
   (``OPERATION_NAMES``).
"""

from __future__ import annotations

import dataclasses
import enum
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
from lxml import etree

from tests.csta.asn1schema import (
    ASN1_DIR,
    AsnType,
    Component,
    Schema,
    SchemaError,
    load_schema,
    parse_module_text,
)
from uacsta.csta import codec, errorcodes
from uacsta.csta.messages import (
    MESSAGE_CLASSES,
    CSTAErrorCode,
    CstaEvent,
    CstaMessage,
    CstaRequest,
    CstaResponse,
    UnknownMessage,
)

# Rule 8: ECMA-323 root name -> ECMA-285 OPERATION name, where the latter is not simply the
# root with a lower-case first letter.
OPERATION_NAMES = {
    "GetCSTAFeatures": "getCSTAFeature",
    "RequestSystemStatus": "requestSysStat",
    "SingleStepConferenceCall": "singleStepConf",
    "SingleStepTransferCall": "singleStepTrans",
}
# Rule 6: ASN.1 identifiers that ECMA-323 spells differently.
XML_SPELLINGS = {
    "numberdialed": "numberDialed",
    "actualmonitorFilter": "actualMonitorFilter",
}
EVENT_MODULE = "CSTA-event-report-definitions"
# Rules 1-3: types written in a form of their own; name -> defining module.
DEVICE_ID = ("DeviceID", "CSTA-device-identifiers")
CONNECTION_ID = ("ConnectionID", "CSTA-call-connection-identifiers")
OPAQUE = {"CSTACommonArguments": "CSTA-extension-types", "CSTAPrivateData": "CSTA-extension-types"}
_BOOLEANS = frozenset({"true", "false", "1", "0"})
_INTEGER_RE = re.compile(r"[+-]?[0-9]+")


@pytest.fixture(scope="session")
def schema() -> Schema:
    try:
        return load_schema(ASN1_DIR)
    except SchemaError as exc:
        pytest.fail(f"cannot read the ECMA-285 ASN.1 modules: {exc}", pytrace=False)


# --- message class -> ASN.1 type ---------------------------------------------------------------


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def root_type(cls: type[CstaMessage], schema: Schema) -> tuple[AsnType, str]:
    """The ASN.1 type of a message class's root element, and a label saying where it came from."""
    name = cls.xml_name()
    if cls is CSTAErrorCode:
        return schema.error_parameter("universalFailure"), "ERROR universalFailure PARAMETER"
    if issubclass(cls, CstaEvent):
        return schema.lookup(name, EVENT_MODULE)[0], f"type {name}"
    if issubclass(cls, CstaResponse):
        if not name.endswith("Response"):
            raise SchemaError(f"{name}: a response class whose name does not end in Response")
        service = name.removesuffix("Response")
        operation = schema.operation(OPERATION_NAMES.get(service, _lower_first(service)))
        if operation.result is None:
            raise SchemaError(f"{name}: OPERATION {operation.name} has no RESULT")
        return operation.result, f"OPERATION {operation.name} RESULT"
    if issubclass(cls, CstaRequest):
        operation = schema.operation(OPERATION_NAMES.get(name, _lower_first(name)))
        if operation.argument is None:
            raise SchemaError(f"{name}: OPERATION {operation.name} has no ARGUMENT")
        return operation.argument, f"OPERATION {operation.name} ARGUMENT"
    raise SchemaError(f"{name}: not a request, response or event class")


def _all_classes() -> dict[str, type[CstaMessage]]:
    """Every concrete message class, also those the codec writes under another root."""
    bases = {CstaMessage, CstaRequest, CstaResponse, CstaEvent, UnknownMessage}
    found: dict[str, type[CstaMessage]] = {}
    stack: list[type[CstaMessage]] = [CstaMessage]
    while stack:
        for sub in stack.pop().__subclasses__():
            stack.append(sub)
            # ``dataclass(slots=True)`` replaces a class; the replaced one lingers among the
            # subclasses, so keep only the class its module names.
            bound = getattr(sys.modules[sub.__module__], sub.__qualname__, None)
            if bound is sub and sub not in bases:
                found[sub.__name__] = sub
    return dict(sorted(found.items()))


#: ``MESSAGE_CLASSES`` plus uacsta's notices (a MonitorEndedEvent is written as MonitorStop).
ALL_CLASSES = _all_classes()


def written_as(cls: type[CstaMessage]) -> type[CstaMessage]:
    """The message class whose root the codec writes for ``cls`` (itself, for wire classes)."""
    if MESSAGE_CLASSES.get(cls.xml_name()) is cls:
        return cls
    root = etree.QName(etree.fromstring(codec.encode(message_instances(cls)[0]))).localname
    target = MESSAGE_CLASSES.get(root)
    if target is None:
        raise SchemaError(f"{cls.__name__} is written as <{root}>, which is no message class")
    return target


# --- instances with every field set ------------------------------------------------------------

SAMPLE_TEXT = "4711"  # digits: valid wherever the ASN.1 has a string, an octet string or a number
SAMPLE_INT = 3
SAMPLE_EXTENSIONS = (
    b"<extensions><privateData><private><vendor xmlns='urn:x-test'>1</vendor></private>"
    b"</privateData></extensions>"
)


def _request_names() -> frozenset[str]:
    return frozenset(
        _lower_first(n) for n, c in MESSAGE_CLASSES.items() if issubclass(c, CstaRequest)
    )


def _event_names() -> frozenset[str]:
    return frozenset(
        _lower_first(n.removesuffix("Event"))
        for n, c in MESSAGE_CLASSES.items()
        if issubclass(c, CstaEvent)
    )


def _flag_values(field_name: str) -> list[frozenset[str]]:
    """A flag set field holds service names or event names, as the server fills it."""
    return [_request_names() if "service" in field_name else _event_names()]


def _values(hint: Any, field_name: str, partial: bool = False) -> list[Any]:
    """Representative values of a field type: every enum member, Literal and union member.

    ``partial``: structures also come with each optional field left out in turn, so that of
    two fields the codec writes as one CHOICE (the first set one wins) each alternative shows.
    """
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if any(isinstance(a, type) and issubclass(a, enum.Enum) for a in args):
            args = [a for a in args if a is not str]  # str only passes unknown values through
        out: list[Any] = []
        for arg in args:
            out.extend(_values(arg, field_name, partial))
        return out
    if origin is typing.Literal:
        return list(get_args(hint))
    if origin is tuple:
        items = _values(get_args(hint)[0], field_name, partial)
        return [(items[k], items[(k + 1) % len(items)]) for k in range(len(items))]
    if origin is frozenset:
        return _flag_values(field_name)
    if hint is bool:
        return [True]
    if hint is int:
        return [SAMPLE_INT]
    if hint is str:
        return [SAMPLE_TEXT]
    if hint is bytes:
        return [SAMPLE_EXTENSIONS]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return list(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _instances(hint, partial)
    raise TypeError(f"no sample values for field type {hint!r} ({field_name})")


def _instances(cls: type[Any], partial: bool = False) -> list[Any]:
    """Instances of a dataclass with every field set; instance k takes each field's k-th value.

    With ``partial``, also one instance per optional field with that field left out.
    """
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    columns = {f.name: _values(hints[f.name], f.name, partial) for f in fields}
    count = max((len(v) for v in columns.values()), default=1)
    built = [cls(**{n: v[k % len(v)] for n, v in columns.items()}) for k in range(count)]
    if cls.__name__ == "ConnectionID":  # rule 2: callID and/or deviceID
        built.extend(cls(**{f.name: SAMPLE_TEXT}) for f in fields)
    # A struct with a Literal ``kind`` is a CHOICE already (the kind picks the alternative,
    # covered by the Literal's values); leaving its payload out only makes a degenerate value.
    tagged = any(get_origin(hints[f.name]) is typing.Literal for f in fields)
    if partial and not tagged:
        for f in fields:
            if f.default is None and f.name != "extensions":
                built.extend(dataclasses.replace(b, **{f.name: None}) for b in built[:count])
    return built


def message_instances(cls: type[CstaMessage], partial: bool = False) -> list[CstaMessage]:
    """Messages with every field set (``partial``: also those with one field left out)."""
    if cls is CSTAErrorCode:
        # Every category with each of its values; ``unspecified`` also as the model builds it.
        found: list[CstaMessage] = [CSTAErrorCode.unspecified()]
        for category, values in errorcodes.CATEGORY_VALUES.items():
            for value in values:
                found.append(CSTAErrorCode.of(str(category), str(value)))
        return found
    return _instances(cls, partial)


def emptied(value: Any) -> Any:
    """``value`` with every list and flag set in it, also in nested structures, empty: what
    the server sends for an idle device's snapshot or a call without connections."""
    if isinstance(value, tuple):
        return ()
    if isinstance(value, frozenset):
        return frozenset()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: emptied(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init
        }
        return dataclasses.replace(value, **changes)
    return value


# --- the walk ----------------------------------------------------------------------------------


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname


def _children(el: etree._Element) -> list[etree._Element]:
    return [c for c in el if isinstance(c.tag, str)]


def _text(el: etree._Element) -> str:
    return "".join(str(t) for t in el.itertext()).strip(" \t\r\n")


def _names(items: typing.Iterable[str], limit: int = 6) -> str:
    items = list(items)
    shown = ", ".join(items[:limit])
    return shown + (", …" if len(items) > limit else "")


def _xml_name(component: Component) -> str:
    if (
        component.name == "crossRefIdentifier"
        and component.type.kind == "REF"
        and component.type.ref == "MonitorCrossRefID"
    ):
        return "monitorCrossRefID"  # rule 6
    return XML_SPELLINGS.get(component.name, component.name)


@dataclass
class Walk:
    """Checks one document against one ASN.1 type; collects what differs, with its path."""

    schema: Schema
    namespace: str | None
    mandatory: bool = True  # report mandatory components that are absent
    errors: list[str] = field(default_factory=list)

    def fail(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def element(self, el: etree._Element, asn: AsnType, path: str) -> None:
        if etree.QName(el).namespace != self.namespace:
            self.fail(path, f"namespace {etree.QName(el).namespace!r}, not the document's")
        label: str | None = None
        for _ in range(64):
            if asn.kind != "REF":
                break
            assert asn.ref is not None
            if asn.ref in OPAQUE:  # rule 3
                return
            target, module = self.schema.lookup(asn.ref, asn.module)
            if (asn.ref, module) == DEVICE_ID:
                self.leaf(el, path, "DeviceID")  # rule 1
                return
            if (asn.ref, module) == CONNECTION_ID:
                self.connection_id(el, path)  # rule 2
                return
            label, asn = asn.ref, target
        label = label or f"the {asn.kind} of {path.rsplit('/', 1)[-1]}"
        match asn.kind:
            case "SEQUENCE" | "SET":
                self.sequence(el, asn.components, path, label, ordered=asn.kind == "SEQUENCE")
            case "CHOICE":
                self.choice(el, asn.components, path, label)
            case "SEQUENCE OF" | "SET OF":
                self.list_of(el, asn, path)
            case "ENUMERATED":
                self.leaf(el, path, label)
                text = _text(el)
                if text not in asn.names:
                    self.fail(
                        path,
                        f"value {text!r} is not among the ENUMERATED names of {label} "
                        f"({_names(asn.names)})",
                    )
            case "BIT STRING":
                self.bit_string(el, asn, path, label)
            case "BOOLEAN":
                self.leaf(el, path, label)
                if _text(el) not in _BOOLEANS:
                    self.fail(path, f"value {_text(el)!r} is not a BOOLEAN")
            case "INTEGER":
                self.leaf(el, path, label)
                text = _text(el)
                if _INTEGER_RE.fullmatch(text) is None and text not in asn.names:
                    self.fail(path, f"value {text!r} is not an INTEGER")
            case "NULL":
                if _children(el) or _text(el):
                    self.fail(path, f"{label} is NULL: the element must be empty")
            case _:
                self.leaf(el, path, label)

    def leaf(self, el: etree._Element, path: str, label: str) -> None:
        kids = _children(el)
        if kids:
            self.fail(
                path,
                f"{label} is written as text, found element {_local(kids[0])} inside",
            )

    def connection_id(self, el: etree._Element, path: str) -> None:
        names = [_local(c) for c in _children(el)]
        if names not in (["callID"], ["deviceID"], ["callID", "deviceID"]):
            self.fail(
                path,
                f"ConnectionID is callID and/or deviceID (in that order), found ({_names(names)})",
            )
        for child in _children(el):
            if _local(child) in ("callID", "deviceID"):
                self.leaf(child, f"{path}/{_local(child)}", _local(child))
        if el.text and el.text.strip():
            self.fail(path, "ConnectionID holds text outside callID/deviceID")

    def sequence(
        self,
        el: etree._Element,
        components: tuple[Component, ...],
        path: str,
        label: str,
        *,
        ordered: bool,
    ) -> None:
        index = {_xml_name(c): i for i, c in enumerate(components)}
        if el.text and el.text.strip():
            self.fail(path, f"{label} is a SEQUENCE, found text {el.text.strip()[:20]!r}")
        last: int = -1
        last_name = ""
        seen: set[str] = set()
        for child in _children(el):
            name = _local(child)
            position = index.get(name)
            if position is None and name == "privateData" and "extensions" in index:
                position = index["extensions"]  # rule 3
            if position is None:
                self.fail(
                    path,
                    f"element {name} is not a field of {label} ({_names(index)})",
                )
                continue
            if name in seen:
                self.fail(path, f"element {name} appears twice")
            elif ordered and position < last:
                self.fail(
                    path,
                    f"element {name} is out of ASN.1 order: {label} puts it before {last_name}",
                )
            if position > last:
                last, last_name = position, name
            seen.add(name)
            self.element(child, components[position].type, f"{path}/{name}")
        for component in components:
            name = _xml_name(component)
            if self.mandatory and component.required and name not in seen:
                self.fail(path, f"mandatory field {name} of {label} is missing")

    def choice(
        self,
        el: etree._Element,
        components: tuple[Component, ...],
        path: str,
        label: str,
    ) -> None:
        alternatives = {_xml_name(c): c for c in components}
        kids = _children(el)
        if len(kids) != 1:
            found = _names(_local(k) for k in kids) or "nothing"
            self.fail(
                path,
                f"{label} is a CHOICE: expected one of ({_names(alternatives)}), found {found}",
            )
        if el.text and el.text.strip():
            self.fail(path, f"{label} is a CHOICE, found text {el.text.strip()[:20]!r}")
        for kid in kids:
            name = _local(kid)
            alternative = alternatives.get(name)
            if alternative is None:
                self.fail(
                    path,
                    f"element {name} is not an alternative of {label} ({_names(alternatives)})",
                )
            else:
                self.element(kid, alternative.type, f"{path}/{name}")

    def list_of(self, el: etree._Element, asn: AsnType, path: str) -> None:
        assert asn.element is not None
        kids = _children(el)
        names = sorted({_local(k) for k in kids})
        if len(names) > 1:
            self.fail(path, f"SEQUENCE OF items must share one element name, found {names}")
        if el.text and el.text.strip():
            self.fail(path, f"a SEQUENCE OF holds item elements, found text {el.text.strip()!r}")
        for kid in kids:
            self.element(kid, asn.element, f"{path}/{_local(kid)}")

    def bit_string(self, el: etree._Element, asn: AsnType, path: str, label: str) -> None:
        if not asn.names:
            self.leaf(el, path, label)
            return
        seen: set[str] = set()
        for kid in _children(el):
            name = _local(kid)
            if name not in asn.names:
                self.fail(
                    path,
                    f"element {name} is not a named bit of {label} ({_names(asn.names)})",
                )
                continue
            if name in seen:
                self.fail(path, f"bit {name} appears twice")
            seen.add(name)
            self.leaf(kid, f"{path}/{name}", name)
            if _text(kid) not in _BOOLEANS:
                self.fail(f"{path}/{name}", f"a named bit holds a boolean, not {_text(kid)!r}")
        if el.text and el.text.strip():
            self.fail(path, f"{label} is a BIT STRING of named bits, found text")


def check_document(
    cls: type[CstaMessage], document: bytes, schema: Schema, *, mandatory: bool = True
) -> list[str]:
    """Every difference between ``document`` and the ASN.1 type of ``cls``."""
    root = etree.fromstring(document)
    name = cls.xml_name()
    walk = Walk(schema, etree.QName(root).namespace, mandatory)
    if _local(root) != name:
        walk.fail(name, f"root element is {_local(root)}")
    asn, _ = root_type(cls, schema)
    if issubclass(cls, CstaEvent):  # rule 5
        report = schema.type("CSTAEventReportArgument", EVENT_MODULE)
        resolved = schema.resolve(asn).type
        components = (report.components[0], *resolved.components)
        walk.sequence(root, components, name, name, ordered=True)
        return walk.errors
    resolved = schema.resolve(asn).type
    if resolved.kind == "CHOICE" and {c.name for c in resolved.components} == {
        "extensions",
        "noData",
    }:  # rule 7
        kids = [_local(k) for k in _children(root)]
        if kids not in ([], ["extensions"]):
            walk.fail(name, f"a result without data is empty, found ({_names(kids)})")
        return walk.errors
    walk.element(root, asn, name)
    return walk.errors


def conformance_errors(cls: type[CstaMessage], schema: Schema) -> list[str]:
    """What differs, over every instance of ``cls`` in every edition, each difference once.

    Instances with a field left out (to reach every CHOICE alternative) are not held to the
    mandatory fields: leaving one out was the test's doing. Each instance is also checked with
    its lists and flag sets emptied (:func:`emptied`): an empty list is a value, and emptying
    it must not make a mandatory field disappear (SEQUENCE OF, or a CHOICE holding one).
    """
    found: dict[str, None] = {}
    checked: set[bytes] = set()
    target = written_as(cls)

    def add(errors: list[str]) -> None:
        for error in errors:
            hint = ""
            if f"value {SAMPLE_TEXT!r} is not among the ENUMERATED" in error:
                hint = " [the model types this field as a plain str]"
            found[error + hint] = None

    cases = [(m, True) for m in message_instances(cls)]
    cases += [(m, False) for m in message_instances(cls, partial=True)]
    for message, is_complete in cases:
        for edition in codec.Edition if is_complete else (codec.Edition.ED3,):
            document = codec.encode(message, edition)
            if document in checked:
                continue  # a partial instance may be a complete one again
            checked.add(document)
            add(check_document(target, document, schema, mandatory=is_complete))
            if cls is CSTAErrorCode:
                continue
            empty = codec.encode(emptied(message), edition)
            before = set(check_document(target, document, schema))
            add([e for e in check_document(target, empty, schema) if e not in before])
    return list(found)


# --- tests: the reader -------------------------------------------------------------------------


def test_reader_reads_every_module(schema: Schema) -> None:
    assert len(list(ASN1_DIR.glob("*.asn1"))) == 268
    assert len(schema.modules) == 268
    assert schema.modules["CSTA-event-causes"].path.name == "event-cause.asn1"
    assert schema.modules["CSTA-device-identifiers"].path.name == "device-identifier.asn1"


def test_reader_deflect_call_argument(schema: Schema) -> None:
    argument = schema.operation("deflectCall").argument
    assert argument is not None and argument.ref == "DeflectCallArgument"
    seq = schema.resolve(argument).type
    assert seq.kind == "SEQUENCE"
    assert [c.name for c in seq.components] == [
        "callToBeDiverted",
        "newDestination",
        "addNewDestinationsList",
        "correlatorData",
        "userData",
        "callCharacteristics",
        "subjectOfCall",
        "languagePreferences",
        "reason",
        "extensions",
    ]
    assert [c.required for c in seq.components[:3]] == [True, True, False]
    # ``reason [3] IMPLICIT EventCause``: the tag is dropped, the reference kept.
    assert seq.components[8].type.ref == "EventCause"
    lst = schema.resolve(seq.components[2].type)
    assert lst.type.kind == "SEQUENCE OF" and lst.name == "DeviceIDList"
    assert lst.type.element is not None and lst.type.element.ref == "DeviceID"
    result = schema.resolve(schema.operation("deflectCall").result)  # type: ignore[arg-type]
    assert result.type.kind == "CHOICE"
    assert [c.name for c in result.type.components] == ["extensions", "noData"]
    assert result.type.components[1].type.kind == "NULL"


def test_reader_enumerations_and_choices(schema: Schema) -> None:
    causes = schema.type("EventCause")
    assert causes.kind == "ENUMERATED"
    assert {"aCDBusy", "normalClearing", "singleStepTransfer"} <= set(causes.names)
    assert "acdBusy" not in causes.names
    operation_errors = schema.type("OperationErrors")
    assert "invalidCrossRefID" in operation_errors.names
    assert "invalidCrossRefId" not in operation_errors.names
    redirection = schema.type("RedirectionDeviceID")
    assert [c.name for c in redirection.components] == [
        "numberdialed",
        "notKnown",
        "notRequired",
        "notSpecified",
        "restricted",
    ]
    assert schema.type("LocalConnectionState").names == (
        "null",
        "initiated",
        "alerting",
        "connected",
        "hold",
        "queued",
        "fail",
    )
    connection = schema.type("ConnectionID")
    assert [c.name for c in connection.components] == ["callID", "deviceID", "both"]
    both = connection.components[2].type
    assert both.kind == "SEQUENCE" and [c.name for c in both.components] == [
        "callID",
        "deviceID",
    ]
    failure = schema.resolve(schema.error_parameter("universalFailure"))
    assert failure.name == "UniversalFailure"
    assert [c.name for c in failure.type.components][:2] == ["operation", "security"]


def test_reader_defaults_bits_and_sizes(schema: Schema) -> None:
    conf = schema.resolve(schema.operation("singleStepConf").argument)  # type: ignore[arg-type]
    participation = conf.type.components[2]
    assert participation.name == "participationType"
    assert participation.default == "active" and not participation.required
    monitor_filter = schema.type("MonitorFilter")
    assert monitor_filter.components[0].name == "callControl"
    assert monitor_filter.components[0].default == "{ }"
    attributes = schema.type("DeviceAttributes")
    assert attributes.kind == "BIT STRING"
    assert attributes.names[:2] == ("mediaAccessDevice", "routeingDevice")
    agents = schema.type("AgentStateList")  # SEQUENCE SIZE (1..32) OF AgentStateEntry
    assert agents.kind == "SEQUENCE OF"
    assert agents.element is not None and agents.element.ref == "AgentStateEntry"
    # Imported names resolve in the module that defines them.
    _, module = schema.lookup("DeviceID", "CSTA-deflect-call")
    assert module == "CSTA-device-identifiers"
    # The event types are the ones the event report imports, not capability-exchange's
    # BIT STRINGs of the same name.
    assert schema.resolve(schema.lookup("ButtonPressEvent", EVENT_MODULE)[0]).type.kind == (
        "SEQUENCE"
    )


def test_reader_comments_tabs_and_crlf(tmp_path: typing.Any) -> None:
    text = (
        "Test-module { iso(1) }\r\nDEFINITIONS ::=\r\nBEGIN\r\n"
        "-- Data Types \u2013-\r\n"
        "T ::= SEQUENCE -- a comment -- {\ta\tINTEGER -- x\r\n"
        "\t\tOPTIONAL,\r\n\tb [0] IMPLICIT BOOLEAN DEFAULT TRUE, c SEQUENCE (SIZE(1..2)) OF U }\r\n"
        "U ::= CHOICE { x NULL, y [1] IA5String (SIZE(0..64)) }\r\n"
        "END -- of Test-module\r\n"
    )
    module = parse_module_text(text, tmp_path / "t.asn1")
    seq = module.types["T"]
    assert [(c.name, c.optional, c.default) for c in seq.components] == [
        ("a", True, None),
        ("b", False, "TRUE"),
        ("c", False, None),
    ]
    assert seq.components[2].type.kind == "SEQUENCE OF"
    assert [c.name for c in module.types["U"].components] == ["x", "y"]


def test_mapping_tables_name_what_the_modules_have(schema: Schema) -> None:
    """Rules 6 and 8 stay exceptions: each names an ASN.1 spelling that exists and is needed."""
    for root, operation in OPERATION_NAMES.items():
        assert operation in schema.operations
        assert _lower_first(root) not in schema.operations
    redirection = schema.type("RedirectionDeviceID")
    assert "numberdialed" in [c.name for c in redirection.components]
    monitor_start = schema.resolve(schema.operation("monitorStart").result)  # type: ignore[arg-type]
    names = [c.name for c in monitor_start.type.components]
    assert names[:2] == ["crossRefIdentifier", "actualmonitorFilter"]
    assert set(XML_SPELLINGS) == {"numberdialed", "actualmonitorFilter"}


def test_reader_fails_clearly_without_modules(tmp_path: typing.Any) -> None:
    with pytest.raises(SchemaError, match=r"ASN\.1 modules are missing"):
        load_schema(tmp_path / "absent")


# --- tests: the checker catches what it must (hand-written documents) --------------------------

_NS = "http://www.ecma-international.org/standards/ecma-323/csta/ed3"


def _doc(body: str, root: str) -> bytes:
    return f'<{root} xmlns="{_NS}">{body}</{root}>'.encode()


def test_checker_accepts_a_standard_delivered_event(schema: Schema) -> None:
    cls = MESSAGE_CLASSES["DeliveredEvent"]
    document = _doc(
        "<monitorCrossRefID>43</monitorCrossRefID>"
        "<connection><callID>2</callID><deviceID>sip:1@x</deviceID></connection>"
        "<alertingDevice><deviceIdentifier>sip:1@x</deviceIdentifier></alertingDevice>"
        "<callingDevice><deviceIdentifier>sip:2@x</deviceIdentifier></callingDevice>"
        "<calledDevice><deviceIdentifier>sip:1@x</deviceIdentifier></calledDevice>"
        "<lastRedirectionDevice><numberDialed>sip:3@x</numberDialed></lastRedirectionDevice>"
        "<localConnectionInfo>alerting</localConnectionInfo>"
        "<cause>newCall</cause>",
        "DeliveredEvent",
    )
    assert check_document(cls, document, schema) == []


def test_checker_reports_names_order_choices_and_values(schema: Schema) -> None:
    cls = MESSAGE_CLASSES["DeliveredEvent"]
    document = _doc(
        "<monitorCrossRefID>43</monitorCrossRefID>"
        "<connection><callID>2</callID><deviceID>sip:1@x</deviceID></connection>"
        "<alertingDevice><deviceIdentifier>sip:1@x</deviceIdentifier></alertingDevice>"
        "<callingDevice><deviceIdentifier>sip:2@x</deviceIdentifier></callingDevice>"
        "<calledDevice><deviceIdentifier>sip:1@x</deviceIdentifier><notKnown/></calledDevice>"
        "<lastRedirectionDevice><deviceIdentifier>3</deviceIdentifier></lastRedirectionDevice>"
        "<cause>acdBusy</cause>"
        "<localConnectionInfo>ringing</localConnectionInfo>"
        "<ringCount>3</ringCount>",
        "DeliveredEvent",
    )
    errors = check_document(cls, document, schema)
    assert errors == [
        "DeliveredEvent/calledDevice: CalledDeviceID is a CHOICE: expected one of "
        "(deviceIdentifier, notKnown, restricted), found deviceIdentifier, notKnown",
        "DeliveredEvent/lastRedirectionDevice: element deviceIdentifier is not an alternative"
        " of RedirectionDeviceID (numberDialed, notKnown, notRequired, notSpecified, "
        "restricted)",
        "DeliveredEvent/cause: value 'acdBusy' is not among the ENUMERATED names of EventCause"
        " (aCDBusy, aCDForward, aCDSaturated, activation, activeParticipation, "
        "alertTimeExpired, …)",
        "DeliveredEvent: element localConnectionInfo is out of ASN.1 order: DeliveredEvent "
        "puts it before cause",
        "DeliveredEvent/localConnectionInfo: value 'ringing' is not among the ENUMERATED "
        "names of LocalConnectionState (null, initiated, alerting, connected, hold, queued, …)",
        "DeliveredEvent: element ringCount is not a field of DeliveredEvent "
        "(monitorCrossRefID, connection, alertingDevice, callingDevice, calledDevice, "
        "lastRedirectionDevice, …)",
    ]


def test_checker_reports_missing_fields_lists_bits_and_device_ids(schema: Schema) -> None:
    document = _doc(
        "<monitorCrossRefID>1</monitorCrossRefID>"
        "<actualMonitorFilter><callControl><delivered>true</delivered><ringing>true</ringing>"
        "</callControl></actualMonitorFilter>",
        "MonitorStartResponse",
    )
    assert check_document(MESSAGE_CLASSES["MonitorStartResponse"], document, schema) == [
        "MonitorStartResponse/actualMonitorFilter/callControl: element ringing is not a named"
        " bit of CallControlEvents (bridged, callCleared, conferenced, connectionCleared, "
        "delivered, digitsDialed, …)"
    ]
    document = _doc(
        "<device><deviceIdentifier>1</deviceIdentifier></device>"
        "<forwardingType>forwardImmediate</forwardingType>",
        "SetForwarding",
    )
    assert check_document(MESSAGE_CLASSES["SetForwarding"], document, schema) == [
        "SetForwarding/device: DeviceID is written as text, found element deviceIdentifier inside",
        "SetForwarding: mandatory field activateForward of SetForwardingArgument is missing",
    ]
    document = _doc(
        "<forwardingList><forwardListItem><forwardingType>forwardBusy</forwardingType>"
        "<forwardStatus>yes</forwardStatus></forwardListItem>"
        "<item><forwardingType>forwardBusy</forwardingType><forwardStatus>true</forwardStatus>"
        "</item></forwardingList>",
        "GetForwardingResponse",
    )
    errors = check_document(MESSAGE_CLASSES["GetForwardingResponse"], document, schema)
    assert errors == [
        "GetForwardingResponse/forwardingList: SEQUENCE OF items must share one element name,"
        " found ['forwardListItem', 'item']",
        "GetForwardingResponse/forwardingList/forwardListItem/forwardStatus: value 'yes' is "
        "not a BOOLEAN",
    ]


CAPTURES = sorted((Path(__file__).parent / "asn1").glob("*.xml"))


@pytest.mark.parametrize("path", CAPTURES, ids=[p.stem for p in CAPTURES])
def test_checker_accepts_real_captures(path: Path, schema: Schema) -> None:
    """Documents real peers sent (copied from the references) pass: the rules above are not
    stricter than ECMA-323 as deployed."""
    document = path.read_bytes()
    name = etree.QName(etree.fromstring(document)).localname
    assert check_document(MESSAGE_CLASSES[name], document, schema) == []


def test_captures_are_there() -> None:
    assert len(CAPTURES) >= 9


def test_checker_private_data_and_namespaces(schema: Schema) -> None:
    cls = MESSAGE_CLASSES["AnswerCall"]
    standard = "<callToBeAnswered><callID>1</callID></callToBeAnswered>"
    private = "<privateData><private><v xmlns='urn:x'>1</v></private></privateData>"
    assert check_document(cls, _doc(standard + private, "AnswerCall"), schema) == []
    foreign = "<callToBeAnswered xmlns='urn:other'><callID>1</callID></callToBeAnswered>"
    assert check_document(cls, _doc(foreign, "AnswerCall"), schema) == [
        "AnswerCall/callToBeAnswered: namespace 'urn:other', not the document's"
    ]
    both = "<callToBeAnswered><deviceID>d</deviceID><callID>1</callID></callToBeAnswered>"
    assert check_document(cls, _doc(both, "AnswerCall"), schema) == [
        "AnswerCall/callToBeAnswered: ConnectionID is callID and/or deviceID (in that order), "
        "found (deviceID, callID)"
    ]


# The forms issue 14 found on the wire (written by hand), each with what the checker says.
ISSUE_14_FORMS = [
    (
        "GenerateDigits",
        "<connectionToSendDigits><callID>1</callID></connectionToSendDigits>"
        "<charToSend>12</charToSend>",
        "GenerateDigits: element charToSend is not a field of GenerateDigitsArgument",
    ),
    (
        "DialDigits",
        "<callToBeDialed><callID>1</callID></callToBeDialed><dialingSequence>1</dialingSequence>",
        "DialDigits: element callToBeDialed is not a field of DialDigitsArgument",
    ),
    (
        "TransferCallResponse",
        "<transferredCall><callID>1</callID></transferredCall><connections><connectionListItem>"
        "<endpoint><deviceIdentifier>1</deviceIdentifier></endpoint>"
        "</connectionListItem></connections>",
        "TransferCallResponse/connections/connectionListItem/endpoint: element deviceIdentifier"
        " is not an alternative of the CHOICE of endpoint (deviceID, notKnown, restricted)",
    ),
    (
        "GetCSTAFeaturesResponse",
        "<supportedServices><callControlServices><makeCall>true</makeCall>"
        "</callControlServices></supportedServices>",
        "GetCSTAFeaturesResponse/supportedServices: element callControlServices is not a field",
    ),
    (
        "MonitorStartResponse",
        "<monitorCrossRefID>1</monitorCrossRefID>"
        "<actualMonitorFilter><delivered>true</delivered></actualMonitorFilter>",
        "MonitorStartResponse/actualMonitorFilter: element delivered is not a field of "
        "MonitorFilter",
    ),
    (
        "EstablishedEvent",
        "<monitorCrossRefID>1</monitorCrossRefID>"
        "<establishedConnection><callID>1</callID></establishedConnection>"
        "<answeringDevice><deviceIdentifier>1</deviceIdentifier></answeringDevice>"
        "<callingDevice><deviceIdentifier>2</deviceIdentifier></callingDevice>"
        "<calledDevice><deviceIdentifier>1</deviceIdentifier></calledDevice>"
        "<lastRedirectionDevice><notKnown/></lastRedirectionDevice>"
        "<cause>normalClearing</cause><localConnectionInfo>connected</localConnectionInfo>",
        "EstablishedEvent: element localConnectionInfo is out of ASN.1 order: EstablishedEvent "
        "puts it before cause",
    ),
]


@pytest.mark.parametrize(("root", "body", "expected"), ISSUE_14_FORMS, ids=lambda v: v[:24])
def test_checker_flags_the_forms_issue_14_found(
    root: str, body: str, expected: str, schema: Schema
) -> None:
    errors = check_document(MESSAGE_CLASSES[root], _doc(body, root), schema)
    assert any(e.startswith(expected) for e in errors), errors


def test_checker_empty_results_and_errors(schema: Schema) -> None:
    cls = MESSAGE_CLASSES["AnswerCallResponse"]
    assert check_document(cls, _doc("", "AnswerCallResponse"), schema) == []
    assert check_document(cls, _doc("<noData/>", "AnswerCallResponse"), schema) == [
        "AnswerCallResponse: a result without data is empty, found (noData)"
    ]
    assert (
        check_document(
            CSTAErrorCode, _doc("<operation>invalidCrossRefID</operation>", "CSTAErrorCode"), schema
        )
        == []
    )
    assert check_document(
        CSTAErrorCode, _doc("<operation>invalidCrossRefId</operation>", "CSTAErrorCode"), schema
    ) == [
        "CSTAErrorCode/operation: value 'invalidCrossRefId' is not among the ENUMERATED names"
        " of OperationErrors (generic, atLeastOneConditionalParameterNotProvided, "
        "featureAlreadySet, invalidMsgID, invalidParameterValue, invalidAccountCode, …)"
    ]


# --- tests: every message class ----------------------------------------------------------------


def test_every_message_class_maps_to_an_asn1_type(schema: Schema) -> None:
    assert set(MESSAGE_CLASSES.values()) <= set(ALL_CLASSES.values())
    unmapped: list[str] = []
    for name, cls in ALL_CLASSES.items():
        try:
            asn, _ = root_type(written_as(cls), schema)
            schema.resolve(asn)
        except SchemaError as exc:
            unmapped.append(f"{name}: {exc}")
    assert not unmapped, "message classes without an ECMA-285 type:\n" + "\n".join(unmapped)


def test_every_field_reaches_the_wire() -> None:
    """A field the codec leaves out would escape the conformance check: none may."""
    lost: list[str] = []
    for name, cls in MESSAGE_CLASSES.items():
        if cls is CSTAErrorCode:
            continue
        hints = typing.get_type_hints(cls)
        bare = codec.encode(cls())
        for f in dataclasses.fields(cls):
            if f.name == "extensions" or not f.init:
                continue
            for value in _values(hints[f.name], f.name):
                if codec.encode(cls(**{f.name: value})) == bare:
                    lost.append(f"{name}.{f.name} = {value!r}")
                    break
    assert not lost, "set but not written:\n" + "\n".join(lost)


@pytest.mark.parametrize("name", list(ALL_CLASSES))
def test_message_conforms_to_asn1(name: str, schema: Schema) -> None:
    cls = ALL_CLASSES[name]
    try:
        root_type(written_as(cls), schema)
    except SchemaError as exc:
        pytest.fail(f"{name} has no ECMA-285 type: {exc}", pytrace=False)
    errors = conformance_errors(cls, schema)
    assert not errors, f"{name} differs from ECMA-285 in {len(errors)} ways:\n" + "\n".join(errors)
