"""Per-vendor provisioning files: each generator's keys and values, file names, MAC handling."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from lxml import etree

from uacsta.provisioning import (
    FORMATS,
    PhoneParams,
    ProvisioningError,
    UnknownFile,
    generate,
    generate_for_vendor,
    password_for,
    port_for,
    resolve_filename,
)

MAC = "001565AABBCC"


def params(**kw: object) -> PhoneParams:
    base: dict[str, object] = {
        "mac": "00:15:65:aa:bb:cc",
        "password": "s3cret",
        "server_host": "uacsta.example.com",
        "port": 5070,
        "transport": "tcp",
        "number": "100",
    }
    base.update(kw)
    return PhoneParams(**base)  # type: ignore[arg-type]


def key_values(text: str, sep: str = "=") -> dict[str, str]:
    """``key = value`` lines (comments and blanks skipped), as a phone parses them."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#") or sep not in line:
            continue
        key, _, value = line.partition(sep)
        assert key.strip() not in out, f"duplicate key {key.strip()}"
        out[key.strip()] = value.strip()
    return out


def test_yealink_account_registers_with_mac_and_enables_csta() -> None:
    file = generate("yealink", params())
    assert file.filename == "001565aabbcc.cfg"
    assert file.content.splitlines()[0] == "#!version:1.0.0.1"
    kv = key_values(file.content)
    assert kv["account.16.enable"] == "1"
    assert kv["account.16.user_name"] == MAC
    assert kv["account.16.auth_name"] == MAC
    assert kv["account.16.register_name"] == MAC
    assert kv["account.16.password"] == "s3cret"
    assert kv["account.16.sip_server.1.address"] == "uacsta.example.com"
    assert kv["account.16.sip_server.1.port"] == "5070"
    assert kv["account.16.sip_server.1.transport_type"] == "1"  # 0 UDP, 1 TCP, 2 TLS
    assert kv["account.16.sip_server.1.expires"] == "300"
    assert kv["account.16.csta_number"] == "100"
    assert kv["features.csta_control.enable"] == "1"


@pytest.mark.parametrize(("transport", "value"), [("udp", "0"), ("TCP", "1"), ("tls", "2")])
def test_yealink_transport_and_account_index(transport: str, value: str) -> None:
    kv = key_values(generate("yealink", params(transport=transport, account=3)).content)
    assert kv["account.3.sip_server.1.transport_type"] == value
    assert not any(k.startswith("account.16.") for k in kv)


def test_yealink_without_number_leaves_csta_number_out() -> None:
    kv = key_values(generate("yealink", params(number="")).content)
    assert "account.16.csta_number" not in kv


def _snom(content: str) -> dict[str, etree._Element]:
    root = etree.fromstring(content.encode())
    assert root.tag == "settings"
    out = {}
    for el in root.find("phone-settings"):
        if isinstance(el.tag, str):
            out[el.tag + (f"#{el.get('idx')}" if el.get("idx") else "")] = el
    return out


def test_snom_identity_outbound_proxy_and_csta_switches() -> None:
    file = generate("snom", params(transport="tls", port=5061))
    assert file.filename == f"{MAC}.xml"
    assert file.media_type == "application/xml"
    s = _snom(file.content)
    assert s["user_active#12"].text == "on"
    assert s["user_name#12"].text == MAC
    assert s["user_pass#12"].text == "s3cret"
    assert s["user_host#12"].text == "uacsta.example.com"
    assert s["user_outbound#12"].text == "uacsta.example.com:5061;transport=tls"
    assert s["user_expiry#12"].text == "300"
    assert s["user_hidden#12"].text == "on"
    assert s["csta_control"].text == "on"
    assert int(s["csta_legacy_control"].text or 0) >= 3


def test_snom_escapes_xml_in_values() -> None:
    s = _snom(generate("snom", params(password='a<b>&"c')).content)
    assert s["user_pass#12"].text == 'a<b>&"c'


def test_snom_ipv6_server_is_bracketed_in_outbound() -> None:
    s = _snom(generate("snom", params(server_host="2001:db8::1")).content)
    assert s["user_outbound#12"].text == "[2001:db8::1]:5070;transport=tcp"


def test_mitel_csta_settings_and_commented_sip_line() -> None:
    file = generate("mitel", params())
    assert file.filename == f"{MAC}.cfg"
    kv = key_values(file.content, ":")
    assert kv["csta"] == "1"
    assert kv["csta proxy"] == "uacsta.example.com"
    assert kv["csta port"] == "5070"
    assert kv["csta password"] == "s3cret"
    assert "sip line1 user name" not in kv  # commented out by default
    assert f"# sip line1 user name: {MAC}" in file.content


def test_mitel_sip_line_settings_when_a_line_is_chosen() -> None:
    kv = key_values(generate("mitel", params(account=4)).content, ":")
    assert kv["sip line4 user name"] == MAC
    assert kv["sip line4 auth name"] == MAC
    assert kv["sip line4 password"] == "s3cret"
    assert kv["sip line4 proxy ip"] == "uacsta.example.com"
    assert kv["sip line4 proxy port"] == "5070"
    assert kv["sip line4 registrar ip"] == "uacsta.example.com"


def test_mitel_startup_cfg_has_only_the_csta_block() -> None:
    file = generate("mitel-startup", params())
    assert file.filename == "startup.cfg"
    assert key_values(file.content, ":") == {
        "csta": "1",
        "csta proxy": "uacsta.example.com",
        "csta port": "5070",
        "csta password": "s3cret",
    }


def test_auerswald_lists_the_estos_fields() -> None:
    file = generate("auerswald", params())
    assert file.filename == f"auerswald-{MAC}.xml"
    root = etree.fromstring(file.content.encode())
    fields = {f.get("name"): f.text for f in root.iter("field")}
    assert fields["Registrar address"] == "uacsta.example.com"
    assert fields["Registrar port"] == "5070"
    assert fields["User name"] == MAC
    assert fields["Authentication ID"] == MAC
    assert fields["Account name"] == MAC
    assert fields["Password"] == "s3cret"
    assert fields["SIP server type"] == "estos CSTA (ECSTA)"
    assert fields["uaCSTA"] == "Activated"
    assert fields["Type"] == "PBX"


def test_fanvil_txt_sip_config_module() -> None:
    file = generate("fanvil", params(mac="0c:38:3e:11:22:33"))
    assert file.filename == "0c383e112233.cfg"
    lines = file.content.splitlines()
    assert lines[0].startswith("<<VOIP CONFIG FILE>>")
    assert "<SIP CONFIG MODULE>" in lines
    assert lines[-1] == "<<END OF FILE>>"
    kv = {
        k.strip(): v.strip()
        for k, _, v in (line.partition(":") for line in lines if re.match(r"^[\w ]+ +:", line))
    }
    assert kv["CSTA Enable"] == "1"
    assert kv["SIP1 CSTA Number"] == "100"
    assert kv["SIP1 Register Addr"] == "uacsta.example.com"
    assert kv["SIP1 Register Port"] == "5070"
    assert kv["SIP1 Register User"] == "0C383E112233"
    assert kv["SIP1 Register Pswd"] == "s3cret"
    assert kv["SIP1 Enable Reg"] == "1"
    assert kv["SIP1 Transport Type"] == "1"


def test_fanvil_dotted_format() -> None:
    file = generate("fanvil-dotted", params(mac="0C383E112233", account=2))
    assert file.filename == "0c383e112233-dotted.cfg"
    kv = key_values(file.content)
    assert kv["sip.CSTAEnabled"] == "1"
    assert kv["sip.line.2.CSTANumber"] == "100"
    assert kv["sip.line.2.RegAddr"] == "uacsta.example.com"
    assert kv["sip.line.2.RegPort"] == "5070"
    assert kv["sip.line.2.RegUser"] == "0C383E112233"
    assert kv["sip.line.2.RegPswd"] == "s3cret"


def test_every_vendor_has_a_file() -> None:
    for vendor in ("yealink", "snom", "mitel", "auerswald", "fanvil"):
        files = generate_for_vendor(vendor, params())
        assert files, vendor
        assert all("s3cret" in f.content for f in files)


@pytest.mark.parametrize(
    "mac",
    ["00:15:65:aa:bb:cc", "001565-AABBCC", "0015.65aa.bbcc", "001565aabbcc", " 001565AABBCC "],
)
def test_mac_notations_normalise(mac: str) -> None:
    for key in FORMATS:
        assert MAC in generate(key, params(mac=mac)).content or key == "mitel-startup"


@pytest.mark.parametrize(
    "bad",
    [
        {"mac": "00:15:65:aa:bb"},
        {"mac": "zz1565aabbcc"},
        {"transport": "sctp"},
        {"port": 0},
        {"server_host": ""},
        {"server_host": "a b"},
        {"password": "x\nfeatures.csta_control.enable = 0"},
        {"display_name": "x\rcsta: 0"},
        {"number": "1\n2"},
        {"account": 0},
    ],
)
def test_bad_parameters_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ProvisioningError):
        params(**bad)


def test_unknown_format() -> None:
    with pytest.raises(ProvisioningError, match="unknown format"):
        generate("polycom", params())


def test_per_phone_password_override_in_any_notation() -> None:
    overrides = {"00-15-65-AA-BB-CC": "own", "000413000001": "other"}
    assert password_for("001565aabbcc", "common", overrides) == "own"
    assert password_for("00:04:13:00:00:01", "common", overrides) == "other"
    assert password_for("0C383E112233", "common", overrides) == "common"


def test_port_for_transport() -> None:
    listen = ["udp:0.0.0.0:5060", "tcp:0.0.0.0:5062", "tls:0.0.0.0:5061"]
    assert port_for("tcp", listen) == 5062
    assert port_for("tls", listen) == 5061
    assert port_for("tcp", listen, {"tcp": 40000}) == 40000
    with pytest.raises(ProvisioningError, match="no tls listener"):
        port_for("tls", ["udp:0.0.0.0:5060"])
    with pytest.raises(ProvisioningError):
        port_for("tcp", ["tcp:0.0.0.0:0"])  # ephemeral and not bound: no usable port


def _vendor(vendor: str | None) -> Callable[[str], str | None]:
    return lambda mac: vendor


@pytest.mark.parametrize(
    ("name", "vendor", "fmt", "mac"),
    [
        ("001565aabbcc.cfg", "yealink", "yealink", MAC),
        ("001565AABBCC.cfg", "yealink", "yealink", MAC),
        ("0c383e112233.cfg", "fanvil", "fanvil", "0C383E112233"),
        ("00085D112233.cfg", "mitel", "mitel", "00085D112233"),
        ("000413112233.xml", "snom", "snom", "000413112233"),
        ("000952112233.xml", "auerswald", "auerswald", "000952112233"),
        ("snomD785-000413112233.htm", None, "snom", "000413112233"),
        ("auerswald-000952112233.xml", None, "auerswald", "000952112233"),
        ("0c383e112233-dotted.cfg", None, "fanvil-dotted", "0C383E112233"),
        ("startup.cfg", None, "mitel-startup", None),
    ],
)
def test_resolve_filename(name: str, vendor: str | None, fmt: str, mac: str | None) -> None:
    got = resolve_filename(name, _vendor(vendor))
    assert (got.format, got.mac) == (fmt, mac)


def test_resolve_snom_model() -> None:
    assert resolve_filename("snomD785-000413112233.htm", _vendor(None)).model == "D785"


def test_resolve_filename_errors_say_why() -> None:
    with pytest.raises(UnknownFile, match="not in the inventory"):
        resolve_filename("aabbcc112233.cfg", _vendor(None))
    with pytest.raises(UnknownFile, match=r"snom phone, its file is 000413112233\.xml"):
        resolve_filename("000413112233.cfg", _vendor("snom"))
    with pytest.raises(UnknownFile, match="not a provisioning file"):
        resolve_filename("../etc/passwd", _vendor("yealink"))
    with pytest.raises(UnknownFile):
        resolve_filename("y000000000000.cfg", _vendor("yealink"))
