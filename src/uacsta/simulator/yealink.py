"""A simulated Yealink desk phone's CSTA processor, built to ``yealink-uacsta-behaviour.md``.

It shares no wire assumption with the server: requests are read the way the firmware reads
them (pugixml: the first element is the request; element names compared as exact strings,
prefix included, namespaces never looked at; a value is the element's first text node,
untrimmed; call IDs read with ``atoi``) and every document it sends is written from the
firmware's own templates (pugixml indentation with tabs, ``<x />`` for empty elements, the
misspelled ``www.ecmainternational.org`` namespace where the firmware uses it, the
``TransferedEvent`` root), never by the project's codec.

Behaviour kept from the firmware: the only error it ever sends is ``<unspecified />`` (for a
request it does not handle); a request it cannot carry out gets **no answer** at all; call
control and Set services are answered positively *before* the action is tried (a failing
action still got its positive answer); the line list follows GetSwitchingFunctionDevicesResponse
as a SwitchingFunctionDevices request with ``deviceList/device/deviceID`` items
``sip:user@server:port[;tel=...]``; monitorCrossRefID is the account index; GetDoNotDisturb
is answered in ed3, the rest in ed5 or the misspelled ed5 namespace, as the firmware's table
lists. The call itself runs in the simulated PBX (:mod:`uacsta.simulator.pbx`); this module
turns its events into the firmware's event documents.

Inferred (not visible in the firmware source, see the document): a DigitsGeneratedEvent is
sent per key, the key as a decimal integer (its character code for ``*`` and ``#``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from lxml import etree

from uacsta.csta import messages as m
from uacsta.csta.types import EventCause, ForwardingType, LocalConnectionState
from uacsta.simulator.callmodel import _Refused

if TYPE_CHECKING:
    from uacsta.simulator.callmodel import Leg, Line, SimPhone

#: What a failing action raises in the call model (a state the action does not fit).
_FAILED = (_Refused, RuntimeError, ValueError, KeyError)

__all__ = ["ED3", "ED5", "ED5X", "SERVICE_CROSS_REF_ID", "YealinkFirmware"]

ED3 = "http://www.ecma-international.org/standards/ecma-323/csta/ed3"
ED5 = "http://www.ecma-international.org/standards/ecma-323/csta/ed5"
#: The firmware's misspelled ed5 namespace (no hyphen in the host).
ED5X = "http://www.ecmainternational.org/standards/ecma-323/csta/ed5"
#: GetSwitchingFunctionDevicesResponse / SwitchingFunctionDevices: a fixed value.
SERVICE_CROSS_REF_ID = "C2527445F5CC4848A7E80CBF0F76A11E"
_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'
LCS = LocalConnectionState

# --- the firmware's writer (pugixml format_indent) -------------------------------------------

#: A node: (name, text) for a text element, (name, [children]) for a parent, (name, None) empty.
Node = tuple[str, "str | list[Node] | None"]


def _lines(node: Node, depth: int, out: list[str]) -> None:
    name, content = node
    pad = "\t" * depth
    if content is None or content == []:
        out.append(f"{pad}<{name} />")
    elif isinstance(content, str):
        out.append(f"{pad}<{name}>{escape(content)}</{name}>")
    else:
        out.append(f"{pad}<{name}>")
        for child in content:
            _lines(child, depth + 1, out)
        out.append(f"{pad}</{name}>")


def document(root: str, namespace: str, children: list[Node] | None = None) -> bytes:
    """A whole document as the firmware writes it."""
    if not children:
        return f'{_DECLARATION}<{root} xmlns="{namespace}" />\n'.encode()
    out = [f'<{root} xmlns="{namespace}">']
    for child in children:
        _lines(child, 1, out)
    out.append(f"</{root}>")
    return (_DECLARATION + "\n".join(out) + "\n").encode()


UNSPECIFIED = document("CSTAErrorCode", ED5, [("unspecified", None)])

# --- the firmware's reader -------------------------------------------------------------------

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, remove_comments=True, remove_pis=True, huge_tree=False
)


def _name(el: Any) -> str:
    """The element's name as pugixml sees it: prefix included, namespace ignored."""
    local = etree.QName(el).localname
    return f"{el.prefix}:{local}" if el.prefix else local


def child(el: Any, name: str) -> Any:
    """The first child element named exactly ``name`` (None: absent)."""
    if el is None:
        return None
    for sub in el:
        if isinstance(sub.tag, str) and _name(sub) == name:
            return sub
    return None


def text(el: Any) -> str | None:
    """The element's first text node, untrimmed (None: absent element)."""
    if el is None:
        return None
    return el.text or ""


def atoi(value: str | None) -> int:
    """C ``atoi``: leading blanks, an optional sign, digits; anything else stops (0)."""
    if not value:
        return 0
    s = value.lstrip(" \t\n\r\f\v")
    sign, i = 1, 0
    if s[:1] in ("+", "-"):
        sign, i = (-1 if s[0] == "-" else 1), 1
    digits = ""
    while i < len(s) and s[i].isdigit():
        digits += s[i]
        i += 1
    return sign * int(digits) if digits else 0


def account_of(device: str | None) -> tuple[str, str] | None:
    """(user, server) the firmware looks an account up by: ``sips:``/``sip:`` stripped, split
    at ``@``, the host cut at ``:`` (port) and at ``;tel`` — nothing else is cut."""
    if device is None:
        return None
    rest = device
    for scheme in ("sips:", "sip:"):
        if rest.startswith(scheme):
            rest = rest[len(scheme) :]
            break
    user, at, host = rest.partition("@")
    if not at:
        return (user, "")
    host = host.split(":", 1)[0]
    tel = host.find(";tel")
    if tel >= 0:
        host = host[:tel]
    return (user, host)


def _cut_tel(device: str) -> str:
    tel = device.find(";tel")
    return device[:tel] if tel >= 0 else device


# --- the processor ---------------------------------------------------------------------------


@dataclass
class Account:
    """What the firmware knows of one SIP account (a line)."""

    line: Line
    index: int
    server: str
    port: int = 5060
    #: The account's CSTA tel URL (``account.N.csta_number``): listed as ``;tel=...``.
    tel: str | None = None
    #: The device string of the first MonitorStart (cut at ``;tel``): the phone's own
    #: deviceID in every event.
    monitored_as: str | None = None
    #: The account's MWI subscription setting (what GetMessageWaitingIndicator answers).
    mwi_subscription: bool = True

    @property
    def user(self) -> str:
        return self.line.number

    @property
    def full_name(self) -> str:
        return f"sip:{self.user}@{self.server}"


@dataclass
class YealinkFirmware:
    """One simulated Yealink's CSTA processor over a :class:`SimPhone`'s call model."""

    phone: SimPhone
    #: The account registered to the uaCSTA server itself (listed like any other).
    csta_account: tuple[str, str, int] | None = None
    accounts: list[Account] = field(default_factory=list)
    #: Documents the phone sends on its own (SwitchingFunctionDevices), in order.
    outbox: list[bytes] = field(default_factory=list)
    #: Root names of the requests received, in order (what the firmware saw).
    received: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.accounts:
            self.accounts = [
                Account(line=ln, index=i, server=self.phone.domain)
                for i, ln in enumerate(self.phone.lines)
            ]

    # --- accounts --------------------------------------------------------------------------
    def account(self, device: str | None) -> Account | None:
        key = account_of(device)
        if key is None:
            return None
        user, server = key
        for acc in self.accounts:
            if acc.user == user and acc.server == server:
                return acc
        return None

    def account_of_line(self, line: Line | None) -> Account | None:
        return next((a for a in self.accounts if a.line is line), None)

    def device_list(self) -> list[str]:
        """The line list as the firmware builds it: accounts with a tel URL first."""
        entries = []
        for acc in sorted(self.accounts, key=lambda a: a.tel is None):
            device = f"sip:{acc.user}@{acc.server}:{acc.port}"
            if acc.tel:
                device += f";tel={acc.tel}"
            entries.append(device)
        if self.csta_account is not None:
            user, server, port = self.csta_account
            entries.append(f"sip:{user}@{server}:{port}")
        return entries

    def accounts_changed(self) -> None:
        """A SIP account's settings changed: the firmware sends SwFunctionDevicesChanged (as a
        request, whether or not SystemRegister was done)."""
        self.outbox.append(document("SwFunctionDevicesChanged", ED5X, [("sysStatRegisterID", "2")]))

    # --- requests --------------------------------------------------------------------------
    def handle(self, body: bytes, now: float) -> bytes | None:
        """The answer to one request body; None: the firmware stays silent."""
        try:
            root = etree.fromstring(body, _PARSER)
        except etree.XMLSyntaxError:
            return None
        if root is None:
            return None
        name = _name(root)
        self.received.append(name)
        handler = _HANDLERS.get(name)
        if handler is None:
            return UNSPECIFIED
        return handler(self, root, now)

    # helpers: the phone's connections by the firmware's call IDs
    def _legs(self) -> list[Leg]:
        return self.phone.legs()

    def _leg(self, call_id: int) -> Leg | None:
        for leg in self._legs():
            if atoi(leg.call_id) == call_id and call_id != 0:
                return leg
        return None

    def _call_ids(self, value: str | None) -> list[int]:
        return [atoi(part) for part in (value or "").split("|")]

    def _conn_call(self, el: Any, *, own_text: bool) -> str | None:
        """A connection's call ID text: its ``callID`` child, else (some services) its text."""
        if el is None:
            return None
        sub = child(el, "callID")
        if sub is not None:
            return text(sub)
        return text(el) if own_text else ""

    def _positive(
        self, root: str, namespace: str = ED5, children: list[Node] | None = None
    ) -> bytes:
        return document(root, namespace, children)

    def _act(self, action: Callable[[], object]) -> None:
        """The action after the positive answer: its failure changes nothing on the wire."""
        try:
            action()
        except _FAILED:  # the firmware ignores a failed action
            return

    def _new_call_id(self) -> str:
        self.phone._call_ids += 1
        return self.phone.personality.call_id(self.phone._call_ids)

    # --- call control ---
    def make_call(self, root: Any, now: float) -> bytes | None:
        calling = text(child(root, "callingDevice"))
        called_el = child(root, "calledDirectoryNumber")
        acc = self.account(calling)
        if acc is None or called_el is None or calling is None:
            return None
        # The documented case: no MakeCall while a call rings or an outgoing one connects.
        if any(leg.state in (LCS.ALERTING, LCS.INITIATED) for leg in self._legs()):
            return None
        number = text(called_el) or ""
        call_id: str | None = None
        if number:
            try:
                leg = self.phone._originate(acc.line, number, EventCause.MAKE_CALL, now)
                call_id = leg.call_id
            except _FAILED:  # positive anyway
                call_id = None
        if call_id is None:
            call_id = self._new_call_id()
        return self._positive(
            "MakeCallResponse",
            ED5,
            [("callingDevice", [("callID", call_id), ("deviceID", calling)])],
        )

    def _simple(self, root: Any, element: str, response: str, act: str, now: float) -> bytes | None:
        el = child(root, element)
        if el is None:
            return None
        ids = self._call_ids(self._conn_call(el, own_text=True))
        leg = next((lg for lg in map(self._leg, ids) if lg is not None), None)
        if leg is None and act in ("hold", "retrieve"):
            return None  # a call ID that names no call: silent
        pbx = self.phone._require_pbx()
        if leg is not None:
            if act == "answer" and leg.state == LCS.ALERTING:
                self._act(lambda: pbx.answer(leg, now))
            elif act == "clear":
                self._act(lambda: pbx.release(leg, now))
            elif act == "hold" and leg.state == LCS.CONNECTED:
                self._act(lambda: pbx.hold(leg, now))
            elif act == "retrieve" and leg.state == LCS.HOLD:
                self._act(lambda: self._retrieve(leg, now))
        return self._positive(response)

    def _retrieve(self, leg: Leg, now: float) -> None:
        self.phone.hold_others(leg, now)
        self.phone._require_pbx().retrieve(leg, now)

    def answer_call(self, root: Any, now: float) -> bytes | None:
        return self._simple(root, "callToBeAnswered", "AnswerCallResponse", "answer", now)

    def clear_connection(self, root: Any, now: float) -> bytes | None:
        return self._simple(root, "connectionToBeCleared", "ClearConnectionResponse", "clear", now)

    def hold_call(self, root: Any, now: float) -> bytes | None:
        return self._simple(root, "callToBeHeld", "HoldCallResponse", "hold", now)

    def retrieve_call(self, root: Any, now: float) -> bytes | None:
        return self._simple(root, "callToBeRetrieved", "RetrieveCallResponse", "retrieve", now)

    def single_step_transfer(self, root: Any, now: float) -> bytes | None:
        active = child(root, "activeCall")
        to_el = child(root, "transferredTo")
        if active is None or to_el is None:
            return None
        call_text = self._conn_call(active, own_text=True) or ""
        leg = self._leg(atoi(call_text))
        if leg is None:
            return None
        destination = text(to_el) or ""
        pbx = self.phone._require_pbx()
        self._act(lambda: pbx.single_step_transfer(leg, destination, now))
        return self._positive(
            "SingleStepTransferCallResponse",
            ED5,
            [("transferredCall", [("callID", call_text), ("deviceID", destination)])],
        )

    def _held_active(self, root: Any) -> tuple[str | None, str | None, str | None]:
        held, active = child(root, "heldCall"), child(root, "activeCall")
        return (
            text(child(held, "callID")),
            text(child(active, "callID")),
            text(child(held, "deviceID")),
        )

    def transfer_call(self, root: Any, now: float) -> bytes | None:
        held_id, active_id, held_device = self._held_active(root)
        held, active = self._leg(atoi(held_id)), self._leg(atoi(active_id))
        if held is None or active is None or not held_device:
            return None
        pbx = self.phone._require_pbx()
        self._act(lambda: pbx.transfer(held, active, now))
        return self._positive(
            "TransferCallResponse",
            ED5,
            [
                (
                    "transferredCall",
                    [("callID", active_id or ""), ("deviceID", _cut_tel(held_device))],
                )
            ],
        )

    def conference_call(self, root: Any, now: float) -> bytes | None:
        held_id, active_id, held_device = self._held_active(root)
        held, active = self._leg(atoi(held_id)), self._leg(atoi(active_id))
        if held is None or active is None or not held_device:
            return None
        pbx = self.phone._require_pbx()
        self._act(lambda: pbx.conference(held, active, now))
        joined = f"{held_id}|{active_id}"
        local = _cut_tel(held_device)
        items: list[Node] = [
            (
                "connectionListItem",
                [
                    ("newConnection", [("callID", joined), ("deviceID", local)]),
                    ("oldConnection", [("callID", cid or ""), ("deviceID", local)]),
                ],
            )
            for cid in (held_id, active_id, held_id)
        ]
        return self._positive(
            "ConferenceCallResponse",
            ED5,
            [
                ("conferenceCall", [("callID", joined), ("deviceID", local)]),
                ("connections", items),
            ],
        )

    def consultation_call(self, root: Any, now: float) -> bytes | None:
        existing = child(root, "existingCall")
        call_el, device_el = child(existing, "callID"), child(existing, "deviceID")
        consulted = text(child(root, "consultedDevice"))
        if call_el is None or device_el is None or not consulted:
            return None
        device = text(device_el) or ""
        acc = self.account(device) or self.accounts[0]
        # The callID's value is not used: the phone holds whatever call is active.
        pbx = self.phone._require_pbx()
        call_id: str | None = None
        active = next((lg for lg in self._legs() if lg.state == LCS.CONNECTED), None)
        if active is not None:
            try:
                pbx.hold(active, now, EventCause.CONSULTATION)
                leg = self.phone._originate(acc.line, consulted, EventCause.CONSULTATION, now)
                call_id = leg.call_id
            except _FAILED:  # positive anyway
                call_id = None
        if call_id is None:
            call_id = self._new_call_id()
        return self._positive(
            "ConsultationCallResponse",
            ED5,
            [("initiatedCall", [("callID", call_id), ("deviceID", _cut_tel(device))])],
        )

    def deflect_call(self, root: Any, now: float) -> bytes | None:
        diverted = child(root, "callToBeDiverted")
        target = text(child(child(root, "newDestination"), "device"))
        if target is None:
            return None  # newDestination/device is required (a child element)
        leg = self._leg(atoi(text(child(diverted, "callID"))))
        if leg is not None and leg.state == LCS.ALERTING:
            pbx = self.phone._require_pbx()
            self._act(lambda: pbx.deflect(leg, target, EventCause.REDIRECTED, now))
        return self._positive("DeflectCallResponse")

    def _two(self, root: Any) -> tuple[Leg | None, Leg | None] | None:
        held_id = text(child(child(root, "heldCall"), "callID"))
        active_id = text(child(child(root, "activeCall"), "callID"))
        if held_id is None or active_id is None:
            return None
        return self._leg(atoi(held_id)), self._leg(atoi(active_id))

    def alternate_call(self, root: Any, now: float) -> bytes | None:
        legs = self._two(root)
        if legs is None:
            return None
        held, active = legs
        if held is not None and active is not None:
            pbx = self.phone._require_pbx()
            self._act(lambda: pbx.hold(active, now, EventCause.ALTERNATE))
            self._act(lambda: pbx.retrieve(held, now, EventCause.ALTERNATE))
        return self._positive("AlternateCallResponse")

    def reconnect_call(self, root: Any, now: float) -> bytes | None:
        legs = self._two(root)
        if legs is None:
            return None
        held, active = legs
        if held is not None and active is not None:
            pbx = self.phone._require_pbx()
            self._act(lambda: pbx.release(active, now))
            self._act(lambda: pbx.retrieve(held, now))
        return self._positive("ReconnectCallResponse")

    def generate_digits(self, root: Any, now: float) -> bytes | None:
        call = text(child(child(root, "connectionToSendDigits"), "callID"))
        digits = text(child(root, "charactersToSend"))
        if call is None or digits is None:
            return None
        leg = self._leg(atoi(call))
        if leg is None:
            return None
        if leg.line is not None:
            self.phone.emit(
                leg.line, m.DigitsGeneratedEvent(connection=leg.own, digit_generated_list=digits)
            )
        return self._positive("GenerateDigitsResponse")

    # --- system, monitoring ---
    def request_system_status(self, root: Any, now: float) -> bytes | None:
        return self._positive("RequestSystemStatusResponse", ED5, [("systemStatus", "normal")])

    def get_sf_devices(self, root: Any, now: float) -> bytes | None:
        entries: list[Node] = [("device", [("deviceID", d)]) for d in self.device_list()]
        self.outbox.append(
            document(
                "SwitchingFunctionDevices",
                ED5X,
                [
                    ("serviceCrossRefID", SERVICE_CROSS_REF_ID),
                    ("lastSegment", "true"),
                    ("deviceList", entries),
                ],
            )
        )
        return self._positive(
            "GetSwitchingFunctionDevicesResponse",
            ED5X,
            [("serviceCrossRefID", SERVICE_CROSS_REF_ID)],
        )

    def system_register(self, root: Any, now: float) -> bytes | None:
        return self._positive("SystemRegisterResponse", ED5X, [("sysStatRegisterID", "2")])

    def monitor_start(self, root: Any, now: float) -> bytes | None:
        device = text(child(child(root, "monitorObject"), "deviceObject"))
        acc = self.account(device)
        if acc is None or device is None:
            return None
        xref = str(acc.index)
        if acc.monitored_as is None:
            acc.monitored_as = _cut_tel(device)
        self.phone.monitors[xref] = acc.line
        return self._positive(
            "MonitorStartResponse",
            ED5X,
            [("monitorCrossRefID", xref), ("monitorExistingCalls", "true")],
        )

    def monitor_stop(self, root: Any, now: float) -> bytes | None:
        xref = text(child(root, "monitorCrossRefID"))
        if xref is None:
            return None
        self.phone.monitors.pop(xref, None)
        return self._positive("MonitorStopResponse", ED5X)

    # --- DND, forwarding, MWI, snapshot ---
    def _device_account(self, root: Any) -> tuple[bool, Account | None]:
        el = child(root, "device")
        return el is not None, self.account(text(el))

    def get_forwarding(self, root: Any, now: float) -> bytes | None:
        present, acc = self._device_account(root)
        if not present:
            return None
        line = (acc or self.accounts[0]).line  # unknown: the phone-wide setting
        items: list[Node] = []
        for kind, source in (
            ("forwardImmediate", ForwardingType.FORWARD_IMMEDIATE),
            ("forwardBusy", ForwardingType.FORWARD_BUSY),
            # The firmware fills the no-answer item from the busy setting (its bug).
            ("forwardNoAns", ForwardingType.FORWARD_BUSY),
        ):
            on, target = line.forwarding.get(source, (False, None))
            item: list[Node] = [
                ("forwardingType", kind),
                ("forwardStatus", "true" if on else "false"),
                ("forwardDN", f"tel:{target or ''}"),
            ]
            if kind == "forwardNoAns":
                item.append(("ringDuration", "0"))
            items.append(("forwardListItem", item))
        return self._positive("GetForwardingResponse", ED5X, [("forwardingList", items)])

    def get_dnd(self, root: Any, now: float) -> bytes | None:
        present, acc = self._device_account(root)
        if not present:
            return None
        line = (acc or self.accounts[0]).line
        return self._positive(
            "GetDoNotDisturbResponse", ED3, [("doNotDisturbOn", "true" if line.dnd else "false")]
        )

    def set_forwarding(self, root: Any, now: float) -> bytes | None:
        _present, acc = self._device_account(root)
        kinds = {
            "forwardImmediate": ForwardingType.FORWARD_IMMEDIATE,
            "forwardBusy": ForwardingType.FORWARD_BUSY,
            "forwardNoAns": ForwardingType.FORWARD_NO_ANS,
        }
        kind = kinds.get(text(child(root, "forwardingType")) or "")
        if acc is None or kind is None:
            return None
        on = text(child(root, "activateForward")) == "true"
        target = text(child(root, "forwardDN"))  # stored as sent
        self._act(lambda: self.phone.set_forwarding(acc.line.number, kind, on, target))
        return self._positive("SetForwardingResponse")

    def set_dnd(self, root: Any, now: float) -> bytes | None:
        _present, acc = self._device_account(root)
        if acc is None:
            return None
        on = text(child(root, "doNotDisturbOn")) == "true"
        self._act(lambda: self.phone.set_dnd(acc.line.number, on))
        return self._positive("SetDoNotDisturbResponse")

    def get_mwi(self, root: Any, now: float) -> bytes | None:
        _present, acc = self._device_account(root)
        if acc is None:
            return None
        on = "true" if acc.mwi_subscription else "false"
        return self._positive(
            "GetMessageWaitingIndicatorResponse", ED5X, [("messageWaitingOn", on)]
        )

    def snapshot_device(self, root: Any, now: float) -> bytes | None:
        # snapshotObject is ignored: the phone's focused call only.
        legs = self._legs()
        focused = next(
            (lg for state in (LCS.CONNECTED, LCS.ALERTING, LCS.INITIATED, LCS.HOLD)
             for lg in legs if lg.state == state),
            None,
        )  # fmt: skip
        if focused is None:
            data: list[Node] = []
        else:
            acc = self.account_of_line(focused.line) or self.accounts[0]
            state = {LCS.ALERTING: "alerting", LCS.HOLD: "hold"}.get(focused.state, "connected")
            data = [
                (
                    "snapshotDeviceResponseInfo",
                    [
                        (
                            "connectionIdentifier",
                            [("callID", focused.call_id), ("deviceID", acc.full_name)],
                        ),
                        (
                            "localCallState",
                            [("compoundCallState", [("localConnectionState", state)])],
                        ),
                    ],
                )
            ]
        return self._positive(
            "SnapshotDeviceResponse",
            ED5X,
            [("crossRefIDorSnapshotData", [("snapshotData", data)])],
        )

    # --- events ----------------------------------------------------------------------------
    def render_event(self, event: m.CstaEvent) -> list[bytes]:
        """The firmware's documents for one event of the call model (none: not sent)."""
        xref = event.monitor_cross_ref_id
        line = self.phone.monitors.get(xref or "")
        acc = self.account_of_line(line)
        if acc is None or xref is None:
            return []
        local = acc.monitored_as or acc.full_name
        render = _EVENTS.get(type(event))
        if render is None:
            return []
        return [document(root, ED5, [("monitorCrossRefID", xref), *body]) for root, body in
                render(event, local, _Ctx(self, acc))]  # fmt: skip


_HANDLERS: dict[str, Callable[[YealinkFirmware, Any, float], bytes | None]] = {
    "MakeCall": YealinkFirmware.make_call,
    "AnswerCall": YealinkFirmware.answer_call,
    "ClearConnection": YealinkFirmware.clear_connection,
    "HoldCall": YealinkFirmware.hold_call,
    "RetrieveCall": YealinkFirmware.retrieve_call,
    "SingleStepTransferCall": YealinkFirmware.single_step_transfer,
    "TransferCall": YealinkFirmware.transfer_call,
    "ConsultationCall": YealinkFirmware.consultation_call,
    "DeflectCall": YealinkFirmware.deflect_call,
    "AlternateCall": YealinkFirmware.alternate_call,
    "ReconnectCall": YealinkFirmware.reconnect_call,
    "ConferenceCall": YealinkFirmware.conference_call,
    "GenerateDigits": YealinkFirmware.generate_digits,
    "RequestSystemStatus": YealinkFirmware.request_system_status,
    "GetSwitchingFunctionDevices": YealinkFirmware.get_sf_devices,
    "SystemRegister": YealinkFirmware.system_register,
    "MonitorStart": YealinkFirmware.monitor_start,
    "MonitorStop": YealinkFirmware.monitor_stop,
    "GetForwarding": YealinkFirmware.get_forwarding,
    "GetDoNotDisturb": YealinkFirmware.get_dnd,
    "SetForwarding": YealinkFirmware.set_forwarding,
    "SetDoNotDisturb": YealinkFirmware.set_dnd,
    "SnapshotDevice": YealinkFirmware.snapshot_device,
    "GetMessageWaitingIndicator": YealinkFirmware.get_mwi,
}

# --- event templates -------------------------------------------------------------------------


@dataclass
class _Ctx:
    fw: YealinkFirmware
    acc: Account

    def is_local(self, device: str | None) -> bool:
        return device is not None and self.fw.account(device) is self.acc


def _dev(value: Any) -> str | None:
    """The text of a device field of the call model's events."""
    if value is None:
        return None
    if dataclasses.is_dataclass(value):
        inner = getattr(value, "value", None)
        return None if inner is None else str(inner)
    return str(value)


def _remote(device: str | None) -> str:
    """``sip:`` + far-end user + ``@`` + far-end server, as the firmware writes the far end."""
    if not device:
        return ""
    user, server = account_of(device.split(";", 1)[0]) or ("", "")
    return f"sip:{user}@{server}" if server else f"sip:{user}"


def _cid(conn: Any) -> str:
    return str(getattr(conn, "call_id", "") or "")


def _conn(name: str, call_id: str, local: str) -> Node:
    return (name, [("callID", call_id), ("deviceID", local)])


def _wrapped(name: str, device: str) -> Node:
    return (name, [("deviceIdentifier", device)])


_NOT_KNOWN: Node = ("lastRedirectionDevice", [("notKnown", None)])
_Render = Callable[[Any, str, _Ctx], list[tuple[str, list[Node]]]]


def _delivered(e: m.DeliveredEvent, local: str, ctx: _Ctx) -> list[tuple[str, list[Node]]]:
    cid = _cid(e.connection)
    incoming = str(e.local_connection_info) == "alerting"
    if incoming:
        remote = _remote(_dev(e.calling_device))
        devices = [
            _wrapped("alertingDevice", local),
            _wrapped("callingDevice", remote),
            _wrapped("calledDevice", local),
        ]
        state = "alerting"
    else:
        remote = _remote(_dev(e.alerting_device) or _dev(e.called_device))
        devices = [
            _wrapped("alertingDevice", remote),
            _wrapped("callingDevice", local),
            _wrapped("calledDevice", remote),
        ]
        state = "connected"
    return [
        (
            "DeliveredEvent",
            [
                _conn("connection", cid, local),
                *devices,
                _NOT_KNOWN,
                ("localConnectionInfo", state),
                ("cause", "normal"),
            ],
        )
    ]


def _established(e: m.EstablishedEvent, local: str, ctx: _Ctx) -> list[tuple[str, list[Node]]]:
    cid = _cid(e.established_connection)
    if ctx.is_local(_dev(e.answering_device)):
        remote = _remote(_dev(e.calling_device))
        devices = [local, remote, local]
    else:
        remote = _remote(_dev(e.answering_device) or _dev(e.called_device))
        devices = [remote, local, remote]
    names = ("answeringDevice", "callingDevice", "calledDevice")
    return [
        (
            "EstablishedEvent",
            [
                _conn("establishedConnection", cid, local),
                *(_wrapped(n, d) for n, d in zip(names, devices, strict=True)),
                _NOT_KNOWN,
                ("localConnectionInfo", "connected"),
                ("cause", "normal"),
            ],
        )
    ]


def _cleared(e: m.ConnectionClearedEvent, local: str, ctx: _Ctx) -> list[tuple[str, list[Node]]]:
    if str(e.cause) in ("transfer", "singleStepTransfer", "redirected"):
        return []  # not sent for a call that was forwarded or transferred
    cid = _cid(e.dropped_connection)  # the phone's own call ID in every case
    return [
        (
            "ConnectionClearedEvent",
            [
                _conn("droppedConnection", cid, local),
                _wrapped("releasingDevice", local),  # always local (the firmware's choice)
                ("localConnectionInfo", "null"),
                ("cause", "normalClearing"),
            ],
        )
    ]


def _held(e: m.HeldEvent, local: str, ctx: _Ctx) -> list[tuple[str, list[Node]]]:
    if not ctx.is_local(_dev(e.holding_device)):
        return []  # the firmware reports its own hold only
    return [
        (
            "HeldEvent",
            [
                _conn("heldConnection", _cid(e.held_connection), local),
                _wrapped("holdingDevice", local),
                ("localConnectionInfo", "hold"),
                ("cause", "normal"),
            ],
        )
    ]


def _retrieved(e: m.RetrievedEvent, local: str, ctx: _Ctx) -> list[tuple[str, list[Node]]]:
    if not ctx.is_local(_dev(e.retrieving_device)):
        return []
    return [
        (
            "RetrievedEvent",
            [
                _conn("retrievedConnection", _cid(e.retrieved_connection), local),
                _wrapped("retrievingDevice", local),
                ("localConnectionInfo", "connected"),
                ("cause", "normal"),
            ],
        )
    ]


def _transferred(e: m.TransferredEvent, local: str, ctx: _Ctx) -> list[tuple[str, list[Node]]]:
    if not ctx.is_local(_dev(e.transferring_device)):
        return []  # the others see a call-info update, not a transfer event
    attended = e.secondary_old_call is not None
    body: list[Node] = [_conn("primaryOldCall", _cid(e.primary_old_call), local)]
    if attended:
        body.append(_conn("secondaryOldCall", _cid(e.secondary_old_call), local))
    body += [
        _wrapped("transferringDevice", local),
        _wrapped("transferredToDevice", _remote(_dev(e.transferred_to_device))),
        ("transferredConnections", [("connectionListItem", None)]),
        ("localConnectionInfo", "null"),
        ("cause", "transfer" if attended else "singleStepTransfer"),
    ]
    return [("TransferedEvent", body)]  # the firmware's spelling


def _conferenced(e: m.ConferencedEvent, local: str, ctx: _Ctx) -> list[tuple[str, list[Node]]]:
    if not ctx.is_local(_dev(e.conferencing_device)):
        return []
    a, b = _cid(e.primary_old_call), _cid(e.secondary_old_call)
    joined = f"{a}|{b}"
    items: list[Node] = [
        ("connectionListItem", [("newConnection", [("callID", joined), ("deviceID", local)])])
        for _ in range(3)
    ]
    return [
        (
            "ConferencedEvent",
            [
                _conn("primaryOldCall", a, local),
                _conn("secondaryOldCall", b, local),
                _wrapped("conferencingDevice", local),
                ("conferenceConnections", items),
                ("localConnectionInfo", "connected"),
                ("cause", "normal"),
            ],
        )
    ]


def _diverted(e: m.DivertedEvent, local: str, ctx: _Ctx) -> list[tuple[str, list[Node]]]:
    if not ctx.is_local(_dev(e.diverting_device)):
        return []
    return [
        (
            "DivertedEvent",
            [
                _conn("connection", _cid(e.connection), local),
                _wrapped("divertingDevice", local),
                _wrapped("newDestination", _dev(e.new_destination) or ""),
                _NOT_KNOWN,
                ("localConnectionInfo", "null"),
                ("cause", "normal"),
            ],
        )
    ]


def _failed(e: m.FailedEvent, local: str, ctx: _Ctx) -> list[tuple[str, list[Node]]]:
    far = _remote(_dev(e.failing_device))
    user = (account_of(far) or ("", ""))[0]
    return [
        (
            "FailedEvent",
            [
                _conn("failedConnection", _cid(e.failed_connection), local),
                _wrapped("failingDevice", local),
                _wrapped("callingDevice", user),  # the far end's user name only
                _wrapped("calledDevice", local),
                ("localConnectionInfo", "null"),
                ("cause", "callCancelled"),
            ],
        )
    ]


def _initiated(e: m.ServiceInitiatedEvent, local: str, ctx: _Ctx) -> list[tuple[str, list[Node]]]:
    return [
        (
            "ServiceInitiatedEvent",
            [
                _conn("initiatedConnection", _cid(e.initiated_connection), local),
                _wrapped("initiatingDevice", local),
                ("localConnectionInfo", "initiated"),
                ("cause", "makeCall"),
            ],
        )
    ]


def _originated(e: m.OriginatedEvent, local: str, ctx: _Ctx) -> list[tuple[str, list[Node]]]:
    return [
        (
            "OriginatedEvent",
            [
                _conn("originatedConnection", _cid(e.originated_connection), local),
                _wrapped("callingDevice", local),
                _wrapped("calledDevice", _remote(_dev(e.called_device))),
                ("localConnectionInfo", "connected"),
                ("cause", "normal"),
            ],
        )
    ]


def _digits(e: m.DigitsGeneratedEvent, local: str, ctx: _Ctx) -> list[tuple[str, list[Node]]]:
    cid = _cid(e.connection)
    keys = getattr(e, "digit_generated_list", None) or ""
    return [
        (
            "DigitsGeneratedEvent",
            [
                _conn("connection", cid, local),
                ("digitGeneratedList", key if key.isdigit() else str(ord(key))),
            ],
        )
        for key in str(keys)
    ]


def _dnd(e: m.DoNotDisturbEvent, local: str, ctx: _Ctx) -> list[tuple[str, list[Node]]]:
    on = "true" if e.do_not_disturb_on else "false"
    return [("DoNotDisturbEvent", [_wrapped("device", local), ("doNotDisturbOn", on)])]


def _forwarding(e: m.ForwardingEvent, local: str, ctx: _Ctx) -> list[tuple[str, list[Node]]]:
    kind = str(getattr(e.forwarding_type, "value", e.forwarding_type))
    body: list[Node] = [
        _wrapped("device", local),
        ("forwardingType", kind),
        ("forwardStatus", "true" if e.forward_status else "false"),
        ("forwardTo", f"tel:{e.forward_to or ''}"),
    ]
    if kind == "forwardNoAns":
        body.append(("ringCount", "0"))
    return [("ForwardingEvent", body)]


_EVENTS: dict[type[m.CstaEvent], _Render] = {
    m.DeliveredEvent: _delivered,
    m.EstablishedEvent: _established,
    m.ConnectionClearedEvent: _cleared,
    m.HeldEvent: _held,
    m.RetrievedEvent: _retrieved,
    m.TransferredEvent: _transferred,
    m.ConferencedEvent: _conferenced,
    m.DivertedEvent: _diverted,
    m.FailedEvent: _failed,
    m.ServiceInitiatedEvent: _initiated,
    m.OriginatedEvent: _originated,
    m.DigitsGeneratedEvent: _digits,
    m.DoNotDisturbEvent: _dnd,
    m.ForwardingEvent: _forwarding,
}
