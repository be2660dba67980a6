"""Log lines a stranger triggers are rate-limited (issue 15 item 11).

Before the fix every unauthenticated datagram could cost a WARNING line (a flood of 5,000
REGISTERs wrote thousands: "refused" per wrong password, then "open transactions: 503" per
datagram once the sender's transactions filled up), so an attacker could fill the disk and
bury the lines that matter. Here 5,000 hand-built REGISTERs with wrong credentials arrive
from one address while a real phone registers from another; the log stays short and the
phone is served.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from tests.e2e.conftest import csta_port, phone_ports
from tests.security.conftest import Harness
from tests.security.test_lockout import (
    ATTACKER,
    SipUdp,
    authorization,
    csta_login,
    md5_challenge,
    register,
)

FLOOD = 5000
BATCH = 250
#: Lines the whole flood may cost: a few per kind of refusal plus the summaries.
MAX_LINES = 60


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_a_flood_of_bad_registers_writes_a_bounded_log(harness: Harness) -> None:
    # No per-source message rate limit here (phones.max_messages_per_second, which would
    # drop most of the flood unread): every REGISTER reaches the authentication path.
    server = await harness.start_server(max_messages_per_second=0)
    registrar = ("127.0.0.1", phone_ports(server)["udp"])
    collect = _Collect()
    root = logging.getLogger("uacsta")
    root.addHandler(collect)
    attacker = await SipUdp.open(ATTACKER, registrar[1])
    try:
        call_id = secrets.token_hex(8)
        first = await attacker.ask(
            register(
                mac="001565000000", local=attacker.local, server=registrar, call_id=call_id, cseq=1
            ),
            call_id,
        )
        ch = md5_challenge(first)
        uri = f"sip:{registrar[0]}:{registrar[1]}"
        mark = len(collect.records)
        answered = 0
        for start in range(0, FLOOD, BATCH):
            for i in range(start, start + BATCH):
                mac = f"0015650{i:05X}"
                auth = authorization(
                    ch, method="REGISTER", uri=uri, user=mac, password="guess", nc=i + 1
                )
                attacker.send(
                    register(
                        mac=mac,
                        local=attacker.local,
                        server=registrar,
                        call_id=secrets.token_hex(8),
                        cseq=1,
                        auth=auth,
                    )
                )
            # Pace the flood by the server's answers (each REGISTER gets one), so the
            # datagrams are processed rather than dropped by a full socket buffer.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while answered < start + BATCH * 9 // 10 and loop.time() < deadline:
                try:
                    async with asyncio.timeout(1):
                        await attacker.reply()
                    answered += 1
                except TimeoutError:
                    break
        assert answered >= FLOOD * 8 // 10, f"only {answered} of {FLOOD} answered"

        # A real phone registers and links meanwhile.
        sim = harness.simulation()
        phone = sim.add_phone("yealink", ["100"], transport="udp")
        await sim.start()
        await harness.wait_state(phone.mac, "ready")
    finally:
        attacker.close()
        root.removeHandler(collect)

    flood_lines = [
        r
        for r in collect.records[mark:]
        if r.levelno >= logging.INFO and ATTACKER in r.getMessage()
    ]
    assert len(flood_lines) <= MAX_LINES, "\n".join(r.getMessage() for r in flood_lines[:20])
    # What was suppressed is said, not hidden.
    assert any("suppressed" in r.getMessage() for r in collect.records[mark:]), [
        r.getMessage() for r in flood_lines
    ]


async def test_a_flood_of_bad_csta_logins_writes_a_bounded_log(harness: Harness) -> None:
    server = await harness.start_server()
    port = csta_port(server)
    collect = _Collect()
    root = logging.getLogger("uacsta")
    root.addHandler(collect)
    try:
        refused: list[bool] = []
        for i in range(100):  # 300 wrong logins, three per connection, many account names
            refused += await csta_login(port, f"user{i % 7}", "guess", local=ATTACKER, tries=3)
        assert refused and not any(refused)
        # The CRM still logs in from its own address.
        assert await csta_login(port, "crm", "crm-secret", local="127.0.0.1") == [True]
    finally:
        root.removeHandler(collect)
    auth_lines = [
        r
        for r in collect.records
        if r.levelno >= logging.INFO
        and r.name in ("uacsta.gateways.cstatcp", "uacsta.csta.appsession")
        and ("refused" in r.getMessage() or "block" in r.getMessage())
    ]
    assert len(auth_lines) <= 30, "\n".join(r.getMessage() for r in auth_lines[:40])
