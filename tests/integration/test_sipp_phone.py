"""The real uacsta server with sipp as Yealink desk phones (the independent peer), UDP and TCP.

Three sipp phones in one sipp process (``-m 3``, MACs and digest credentials from an injection
file). ``phone_register.xml`` (the main scenario) REGISTERs with digest; the server's CSTA
INVITE carries its own Call-ID, so sipp hands it to the out-of-call scenario
``phone_csta.xml`` (``-oocsf``): INVITE RequestSystemStatus → 200 (Session-Expires echoed) →
ACK, INFO SystemRegister → 200 (a Yealink implements it), INFO GetSwitchingFunctionDevices →
200, the phone's INFO SwitchingFunctionDevices → 200,
keep-alive INFO RequestSystemStatus → 200. Once every phone is linked the main scenario
un-REGISTERs and the server ends each CSTA dialog with BYE.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.conftest import PASSWORD, make_settings, phone_ports, wait_until
from tests.integration.conftest import SIPP_DIR, SippResult, SippRunner
from uacsta.config import PhoneSettings
from uacsta.server import Server

MACS = ("001565AABB01", "001565AABB02", "001565AABB03")
#: phone_csta.xml announces one line per phone: sip:1<last two MAC digits>@pbx.test.
LINES = {mac: f"sip:1{mac[-2:]}@pbx.test" for mac in MACS}
KEEPALIVE = 1.0


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    # The default digest settings: sipp 3.6/3.7 answers only the first WWW-Authenticate and
    # refuses anything but MD5, like most phone firmwares, so this is what the field needs.
    settings = make_settings(
        tmp_path / "data",
        keepalive_interval=KEEPALIVE,
        csta_timeout=2.0,
        relink_backoff=30.0,
    )
    assert settings.phones.digest_algorithms == PhoneSettings().digest_algorithms
    srv = Server(settings)
    await srv.start()
    assert srv.phones is not None
    try:
        yield srv
    finally:
        await srv.stop()


def _state(server: Server, mac: str) -> str | None:
    assert server.inventory is not None
    record = server.inventory.get(mac)
    return record.state if record is not None else None


@pytest.mark.sipp
@pytest.mark.parametrize(("listen", "sipp_transport"), [("udp", "u1"), ("tcp", "t1")])
async def test_sipp_phones_link_keepalive_and_unregister(
    server: Server, run_sipp: SippRunner, tmp_path: Path, listen: str, sipp_transport: str
) -> None:
    phones = tmp_path / "phones.csv"
    phones.write_text(
        "SEQUENTIAL\n"
        + "".join(f"{mac};[authentication username={mac} password={PASSWORD}]\n" for mac in MACS)
    )
    sipp = asyncio.create_task(
        run_sipp(
            "phone_register.xml",
            "-oocsf",
            str(SIPP_DIR / "phone_csta.xml"),
            "-inf",
            str(phones),
            "-set",
            "phones",
            str(len(MACS)),
            "-m",
            str(len(MACS)),
            "-r",
            "50",
            remote=f"127.0.0.1:{phone_ports(server)[listen]}",
            transport=sipp_transport,
            timeout=10,
        )
    )

    def sipp_failed() -> SippResult | None:
        return sipp.result() if sipp.done() else None

    # Every phone becomes ready with the line it announced; the un-REGISTER waits until all
    # three answered a keep-alive (only a ready link sends one), at least KEEPALIVE later.
    await wait_until(
        lambda: sipp.done() or all(_state(server, mac) == "ready" for mac in MACS),
        8,
        "three sipp phones ready",
    )
    early = sipp_failed()
    assert early is None, f"sipp ended before all phones were ready:\n{early and early.explain()}"
    assert server.inventory is not None and server.phones is not None
    for mac in MACS:
        record = server.inventory.get(mac)
        assert record is not None
        assert record.lines == [LINES[mac]]
        assert (record.vendor, record.model, record.firmware) == ("yealink", "T46G", "28.83.0.35")
        assert record.transport == listen
        assert not record.simulated
        assert server.phones.links[mac].lines == [LINES[mac]]

    result = await sipp
    assert result.returncode == 0, result.explain()

    # Un-registered: the server ended each CSTA dialog (BYE, answered by sipp) and forgot it.
    await wait_until(
        lambda: all(_state(server, mac) == "offline" for mac in MACS), 5, "phones offline"
    )
    for mac in MACS:
        record = server.inventory.get(mac)
        assert record is not None
        assert record.state_reason == "un-registered"
        assert mac not in server.phones.links
        assert mac not in server.phones.targets
        ladder = [(d, kind, name) for _, d, kind, name in server.phones.traces[mac].entries]
        csta = [(d, name) for d, kind, name in ladder if kind == "csta"]
        assert csta[:6] == [
            ("in", "RequestSystemStatusResponse"),
            ("out", "SystemRegister"),
            ("in", "SystemRegisterResponse"),
            ("out", "GetSwitchingFunctionDevices"),
            ("in", "GetSwitchingFunctionDevicesResponse"),
            ("in", "SwitchingFunctionDevices"),
        ]
        assert ("out", "RequestSystemStatus") in csta[6:]
        assert ("in", "RequestSystemStatusResponse") in csta[6:]
    assert server.phones.registrar.lookup(f"sip:{MACS[0]}@127.0.0.1", 0.0) == []
