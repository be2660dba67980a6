"""Per-vendor configuration files that make a phone register to uacsta and enable uaCSTA.

Pure functions: parameters in, file name and text out. The settings are those of the estos
uaCSTA Server manual §3.5.1 (Auerswald, Mitel, snom, Yealink) and the Fanvil uaCSTA guide
(TXT ``<SIP CONFIG MODULE>`` and dotted formats): the server address, port and transport,
the phone's MAC as SIP user name and authentication ID, the phone password, and the switch
that turns uaCSTA on.

Every phone registers a *separate* account/identity with uacsta (estos uses Yealink
account 16 and snom identity 12 in its examples), so the account that talks to the PBX
is left alone. The index is a parameter; the defaults are those of the manual.

File names phones ask for (see :func:`resolve_filename`):

========== ============================================ ===============================
vendor     file                                         format
========== ============================================ ===============================
yealink    ``<mac>.cfg`` (lower case)                   ``#!version:1.0.0.1`` key = value
snom       ``<MAC>.xml``, ``snom<model>-<MAC>.htm``     XML ``<settings><phone-settings>``
mitel      ``<MAC>.cfg``, ``startup.cfg`` (no MAC)      ``key: value``
auerswald  ``auerswald-<MAC>.xml``, ``<MAC>.xml``       XML list of the web-page fields
fanvil     ``<mac>.cfg`` (TXT), ``<mac>-dotted.cfg``    TXT modules / dotted keys
========== ============================================ ===============================

``<mac>.cfg`` and ``<MAC>.xml`` are shared by several vendors; the caller tells which vendor a
MAC belongs to (inventory record or OUI).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lxml import etree

from uacsta.net.address import parse_listen_address
from uacsta.phones.mac import format_mac, normalize_mac

TRANSPORTS = ("udp", "tcp", "tls")
VENDORS = ("yealink", "snom", "mitel", "auerswald", "fanvil")


class ProvisioningError(ValueError):
    """Parameters that cannot go into a configuration file; the message says why."""


class UnknownFile(LookupError):
    """A provisioning file name that names no file; the message says what would."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PhoneParams:
    """What goes into one phone's file."""

    #: MAC of the phone, normalised (``001565AABBCC``); the SIP user name and auth ID.
    mac: str
    password: str
    server_host: str
    port: int
    transport: str
    #: Number of the line uaCSTA controls (Yealink ``csta_number``, Fanvil ``CSTA Number``).
    number: str = ""
    #: Account / identity / line index on the phone; None: the vendor default.
    account: int | None = None
    model: str | None = None
    display_name: str = "uaCSTA"
    #: Registration expiry in seconds (estos: 300).
    expires: int = 300

    def __post_init__(self) -> None:
        mac = normalize_mac(self.mac)
        if mac is None:
            raise ProvisioningError(f"{self.mac!r} is not a MAC address (12 hex digits)")
        object.__setattr__(self, "mac", mac)
        transport = self.transport.lower()
        if transport not in TRANSPORTS:
            raise ProvisioningError(f"transport {self.transport!r}: one of udp, tcp, tls")
        object.__setattr__(self, "transport", transport)
        if not 1 <= self.port <= 65535:
            raise ProvisioningError(f"port {self.port}: must be 1 to 65535")
        if not self.server_host or any(c in self.server_host for c in " \t\r\n/;"):
            raise ProvisioningError(f"server host {self.server_host!r} is not a host name")
        if self.account is not None and not 1 <= self.account <= 99:
            raise ProvisioningError(f"account {self.account}: must be 1 to 99")
        if self.number and not re.fullmatch(r"[\w+*#.@-]{1,64}", self.number):
            raise ProvisioningError(f"line number {self.number!r}: digits, letters, + * # only")
        # Line-based formats have no quoting: a line break would smuggle in another setting.
        for name in ("password", "display_name"):
            value = getattr(self, name)
            if any(c in value for c in "\r\n\x00"):
                raise ProvisioningError(f"{name} must not contain line breaks")

    def host_port(self) -> str:
        host = f"[{self.server_host}]" if ":" in self.server_host else self.server_host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ProvisioningFile:
    filename: str
    content: str
    media_type: str


@dataclass(frozen=True, slots=True)
class Format:
    """One kind of file: which vendor it is for, its name and how it is rendered."""

    key: str
    vendor: str
    label: str
    media_type: str
    default_account: int | None
    filename: Callable[[PhoneParams], str]
    render: Callable[[PhoneParams, int | None], str]

    def generate(self, params: PhoneParams) -> ProvisioningFile:
        account = params.account if params.account is not None else self.default_account
        return ProvisioningFile(
            self.filename(params), self.render(params, account), self.media_type
        )


# --- Yealink ----------------------------------------------------------------------------------
_YEALINK_TRANSPORT = {"udp": 0, "tcp": 1, "tls": 2}


def render_yealink(p: PhoneParams, account: int | None) -> str:
    n = account or 16
    a = f"account.{n}"
    lines = [
        "#!version:1.0.0.1",
        "## The header above must stay the first line of the file.",
        f"## uacsta: account {n} registers to uacsta with the MAC as user name (estos §3.5.1.4).",
        f"## Phone {format_mac(p.mac)}. Enabling CSTA control reboots the phone.",
        "",
        f"{a}.enable = 1",
        f"{a}.label = {p.display_name}",
        f"{a}.display_name = {p.display_name}",
        f"{a}.register_name = {p.mac}",
        f"{a}.auth_name = {p.mac}",
        f"{a}.user_name = {p.mac}",
        f"{a}.password = {p.password}",
        f"{a}.sip_server.1.address = {p.server_host}",
        f"{a}.sip_server.1.port = {p.port}",
        f"{a}.sip_server.1.transport_type = {_YEALINK_TRANSPORT[p.transport]}",
        f"{a}.sip_server.1.expires = {p.expires}",
    ]
    if p.number:
        lines.append(f"{a}.csta_number = {p.number}")
    lines += ["", "features.csta_control.enable = 1", ""]
    return "\n".join(lines)


# --- snom -------------------------------------------------------------------------------------
def render_snom(p: PhoneParams, account: int | None) -> str:
    idx = str(account or 12)
    root = etree.Element("settings")
    root.append(
        etree.Comment(
            f" uacsta: identity {idx} registers to uacsta with the MAC as user name "
            f"(estos 3.5.1.3), phone {format_mac(p.mac)} "
        )
    )
    settings = etree.SubElement(root, "phone-settings", e="2")

    def put(name: str, value: str, index: str | None = None) -> None:
        el = etree.SubElement(settings, name, perm="")
        if index is not None:
            el.set("idx", index)
        el.text = value

    put("user_active", "on", idx)
    put("user_realname", p.display_name, idx)
    put("user_name", p.mac, idx)
    put("user_pname", p.mac, idx)
    put("user_pass", p.password, idx)
    put("user_host", p.server_host, idx)
    put("user_outbound", f"{p.host_port()};transport={p.transport}", idx)
    put("user_expiry", str(p.expires), idx)
    put("user_hidden", "on", idx)
    put("csta_control", "on")
    # The manual: csta_legacy_control must be at least 3; it is not on the web page.
    put("csta_legacy_control", "4")
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True).decode()


# --- Mitel ------------------------------------------------------------------------------------
def _mitel_csta(p: PhoneParams) -> list[str]:
    return [
        "csta: 1",
        f"csta proxy: {p.server_host}",
        f"csta port: {p.port}",
        f"csta password: {p.password}",
    ]


def render_mitel(p: PhoneParams, account: int | None) -> str:
    lines = [
        f"# uacsta: CSTA link of Mitel phone {format_mac(p.mac)} (estos manual 3.5.1.2).",
        "# The phone registers to uacsta with its MAC as user name.",
        "# On the phone's web page set Advanced Settings > Global SIP > Transport Protocol to",
        f"# 'UDP and TCP' (uacsta listens on {p.transport.upper()} port {p.port}).",
        *_mitel_csta(p),
    ]
    n = account or 1
    sip = [
        f"sip line{n} screen name: {p.display_name}",
        f"sip line{n} user name: {p.mac}",
        f"sip line{n} display name: {p.display_name}",
        f"sip line{n} auth name: {p.mac}",
        f"sip line{n} password: {p.password}",
        f"sip line{n} proxy ip: {p.server_host}",
        f"sip line{n} proxy port: {p.port}",
        f"sip line{n} registrar ip: {p.server_host}",
        f"sip line{n} registrar port: {p.port}",
        f"sip line{n} registration period: {p.expires}",
    ]
    if account is None:
        lines += [
            "",
            "# SIP line settings: the csta settings above are what uacsta needs. To register",
            f"# a line to uacsta as well, uncomment (line {n} shown; pick an unused line).",
            *(f"# {s}" for s in sip),
        ]
    else:
        lines += ["", f"# SIP line {n} registers to uacsta.", *sip]
    return "\n".join(lines) + "\n"


def render_mitel_startup(p: PhoneParams, account: int | None) -> str:
    del account
    return (
        "\n".join(
            [
                "# uacsta: startup.cfg for Mitel 6800 phones (estos manual 3.5.1.2).",
                "# The common phone password; a phone with its own password gets <MAC>.cfg.",
                *_mitel_csta(p),
            ]
        )
        + "\n"
    )


# --- Auerswald --------------------------------------------------------------------------------
def auerswald_fields(p: PhoneParams) -> list[tuple[str, list[tuple[str, str]]]]:
    """The web-page fields of estos §3.5.1.1 (COMfortel, 2017) as (section, [(field, value)])."""
    return [
        (
            "Settings > Providers & PBX > new provider (No Profile Import)",
            [
                ("Name", p.display_name),
                ("Domain", p.server_host),
                ("Type", "PBX"),
                ("Registrar", "Activated"),
                ("Registrar address", p.server_host),
                ("Registrar port", str(p.port)),
                ("Transport", p.transport.upper()),
                ("Time period for registration", str(p.expires)),
                ("SIP server type", "estos CSTA (ECSTA)"),
            ],
        ),
        (
            "Settings > Accounts > new account",
            [
                ("Account name", p.mac),
                ("Usage", "Activated"),
                ("User name", p.mac),
                ("Password", p.password),
                ("Authentication ID", p.mac),
                ("Provider & PBX", p.display_name),
            ],
        ),
        ("Settings > COMfortel Extreme Control", [("uaCSTA", "Activated")]),
    ]


def render_auerswald(p: PhoneParams, account: int | None) -> str:
    del account
    root = etree.Element("uacsta-phone-settings", vendor="auerswald", mac=p.mac)
    root.append(
        etree.Comment(
            " Auerswald COMfortel phones are set up on their web page (estos manual 3.5.1.1); "
            "enter these fields there. "
        )
    )
    for title, fields in auerswald_fields(p):
        section = etree.SubElement(root, "section", name=title)
        for name, value in fields:
            etree.SubElement(section, "field", name=name).text = value
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True).decode()


# --- Fanvil -----------------------------------------------------------------------------------
# The vendor guide reads "CSTA Enable: 0 (0: enable, 1: disable)", but its default is 0 while
# uaCSTA is off by default, and every other Fanvil switch uses 1 for on; we write 1.
_FANVIL_TRANSPORT = {"udp": 0, "tcp": 1, "tls": 2}


def render_fanvil_txt(p: PhoneParams, account: int | None) -> str:
    n = account or 1
    s = f"SIP{n}"
    rows = [
        ("CSTA Enable", "1"),
        (f"{s} Phone Number", p.mac),
        (f"{s} Display Name", p.display_name),
        (f"{s} Register Addr", p.server_host),
        (f"{s} Register Port", str(p.port)),
        (f"{s} Register User", p.mac),
        (f"{s} Register Pswd", p.password),
        (f"{s} Register TTL", str(p.expires)),
        (f"{s} Enable Reg", "1"),
        (f"{s} Transport Type", str(_FANVIL_TRANSPORT[p.transport])),
    ]
    if p.number:
        rows.append((f"{s} CSTA Number", p.number))
    width = max(len(k) for k, _ in rows)
    return "\n".join(
        [
            "<<VOIP CONFIG FILE>>Version:2.0000000000",
            "",
            "<SIP CONFIG MODULE>",
            *(f"{k.ljust(width)} :{v}" for k, v in rows),
            "",
            "<<END OF FILE>>",
            "",
        ]
    )


def render_fanvil_dotted(p: PhoneParams, account: int | None) -> str:
    n = account or 1
    line = f"sip.line.{n}"
    rows = [
        ("sip.CSTAEnabled", "1"),
        (f"{line}.PhoneNumber", p.mac),
        (f"{line}.DisplayName", p.display_name),
        (f"{line}.RegAddr", p.server_host),
        (f"{line}.RegPort", str(p.port)),
        (f"{line}.RegUser", p.mac),
        (f"{line}.RegPswd", p.password),
        (f"{line}.RegExpires", str(p.expires)),
        (f"{line}.RegEnabled", "1"),
        (f"{line}.SipTransport", str(_FANVIL_TRANSPORT[p.transport])),
    ]
    if p.number:
        rows.append((f"{line}.CSTANumber", p.number))
    return (
        "\n".join(
            [f"# uacsta: SIP line {n} of Fanvil phone {format_mac(p.mac)} registers to uacsta."]
            + [f"{k} = {v}" for k, v in rows]
        )
        + "\n"
    )


# --- the table --------------------------------------------------------------------------------
_TEXT = "text/plain; charset=utf-8"
_XML = "application/xml"


def _snom_name(p: PhoneParams) -> str:
    return f"{p.mac}.xml"


FORMATS: dict[str, Format] = {
    f.key: f
    for f in (
        Format(
            "yealink",
            "yealink",
            "Yealink <mac>.cfg",
            _TEXT,
            16,
            lambda p: f"{p.mac.lower()}.cfg",
            render_yealink,
        ),
        Format("snom", "snom", "snom settings XML", _XML, 12, _snom_name, render_snom),
        Format(
            "mitel", "mitel", "Mitel <MAC>.cfg", _TEXT, None, lambda p: f"{p.mac}.cfg", render_mitel
        ),
        Format(
            "mitel-startup",
            "mitel",
            "Mitel startup.cfg",
            _TEXT,
            None,
            lambda p: "startup.cfg",
            render_mitel_startup,
        ),
        Format(
            "auerswald",
            "auerswald",
            "Auerswald settings list",
            _XML,
            None,
            lambda p: f"auerswald-{p.mac}.xml",
            render_auerswald,
        ),
        Format(
            "fanvil",
            "fanvil",
            "Fanvil TXT <mac>.cfg",
            _TEXT,
            1,
            lambda p: f"{p.mac.lower()}.cfg",
            render_fanvil_txt,
        ),
        Format(
            "fanvil-dotted",
            "fanvil",
            "Fanvil dotted",
            _TEXT,
            1,
            lambda p: f"{p.mac.lower()}-dotted.cfg",
            render_fanvil_dotted,
        ),
    )
}

#: Which format a vendor's phone gets for a bare ``<mac>.cfg`` / ``<MAC>.xml`` request.
_BY_EXTENSION = {
    "cfg": {"yealink": "yealink", "mitel": "mitel", "fanvil": "fanvil"},
    "xml": {"snom": "snom", "auerswald": "auerswald"},
}


def formats_for_vendor(vendor: str) -> list[Format]:
    return [f for f in FORMATS.values() if f.vendor == vendor]


def generate(format_key: str, params: PhoneParams) -> ProvisioningFile:
    try:
        fmt = FORMATS[format_key]
    except KeyError:
        raise ProvisioningError(
            f"unknown format {format_key!r}; one of {', '.join(FORMATS)}"
        ) from None
    return fmt.generate(params)


def generate_for_vendor(vendor: str, params: PhoneParams) -> list[ProvisioningFile]:
    return [f.generate(params) for f in formats_for_vendor(vendor)]


_HEX12 = "[0-9A-Fa-f]{12}"
_PATTERNS: list[tuple[re.Pattern[str], str | None]] = [
    (re.compile(rf"snom(?P<model>[\w]*)-(?P<mac>{_HEX12})\.htm"), "snom"),
    (re.compile(rf"auerswald-(?P<mac>{_HEX12})\.xml"), "auerswald"),
    (re.compile(rf"(?P<mac>{_HEX12})-dotted\.cfg"), "fanvil-dotted"),
    (re.compile(rf"(?P<mac>{_HEX12})\.(?P<ext>cfg|xml)"), None),
]


@dataclass(frozen=True, slots=True)
class FileRequest:
    """What a requested file name resolves to."""

    format: str
    mac: str | None
    model: str | None = None


def mac_of_filename(filename: str) -> str | None:
    """The MAC a provisioning file name names (normalised), None for any other name."""
    for pattern, _ in _PATTERNS:
        match = pattern.fullmatch(filename)
        if match is not None:
            return normalize_mac(match.group("mac"))
    return None


def resolve_filename(filename: str, vendor_of: Callable[[str], str | None]) -> FileRequest:
    """The format and MAC a phone asks for; ``vendor_of(mac)`` decides shared names.

    Raises :class:`UnknownFile` with a message that says what is wrong.
    """
    if filename == "startup.cfg":
        return FileRequest("mitel-startup", None)
    for pattern, fmt in _PATTERNS:
        match = pattern.fullmatch(filename)
        if match is None:
            continue
        mac = normalize_mac(match.group("mac"))
        assert mac is not None
        model = match.groupdict().get("model") or None
        if fmt is not None:
            return FileRequest(fmt, mac, model)
        ext = match.group("ext")
        vendor = vendor_of(mac)
        if vendor is None:
            raise UnknownFile(
                f"{filename}: phone {format_mac(mac)} is not in the inventory and its "
                "manufacturer prefix is not known; download its file from /admin/provisioning"
            )
        chosen = _BY_EXTENSION[ext].get(vendor)
        if chosen is None:
            names = ", ".join(f.filename(_dummy(mac)) for f in formats_for_vendor(vendor))
            raise UnknownFile(
                f"{filename}: phone {format_mac(mac)} is a {vendor} phone, "
                f"its file is {names or 'not provided'}"
            )
        return FileRequest(chosen, mac)
    raise UnknownFile(
        f"{filename}: not a provisioning file; phones ask for <mac>.cfg, <MAC>.xml, "
        "snom<model>-<MAC>.htm, auerswald-<MAC>.xml, <mac>-dotted.cfg or startup.cfg"
    )


def _dummy(mac: str) -> PhoneParams:
    return PhoneParams(mac=mac, password="-", server_host="localhost", port=5060, transport="udp")


# --- settings helpers -------------------------------------------------------------------------
def password_for(mac: str, default: str, overrides: Mapping[str, str]) -> str:
    """The phone password for ``mac``: a per-phone override (any MAC notation) or the default."""
    wanted = normalize_mac(mac)
    for key, value in overrides.items():
        if normalize_mac(key) == wanted:
            return value
    return default


def port_for(transport: str, listen: list[str], bound: Mapping[str, int] | None = None) -> int:
    """The port phones use for ``transport``: the bound listener, else ``phones.listen``.

    Raises :class:`ProvisioningError` when there is no listener of that transport.
    """
    if bound and bound.get(transport):
        return bound[transport]
    for text in listen:
        address = parse_listen_address(text)
        if address.transport == transport and address.port:
            return address.port
    raise ProvisioningError(
        f"provisioning.transport is {transport!r} but phones.listen has no {transport} "
        f"listener ({', '.join(listen) or 'none'})"
    )
