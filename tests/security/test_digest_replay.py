"""A REGISTER without qop cannot be replayed to take over a phone's link (issue 15 item 5).

Some phones answer a digest challenge in RFC 2069 form (no ``qop``, no ``nc``): nothing in
the answer changes between two uses of the nonce. Before the fix, such a REGISTER captured
on the wire and replayed from another address with another Contact got 200 and moved the
phone's CSTA link to the attacker. Here the real phone (the simulator, answering without
qop as those firmwares do) is linked and ready; its REGISTER is captured and replayed, by
hand-built SIP, from another address and from the phone's own address.
"""

from __future__ import annotations

import hashlib
import secrets

import pytest

import uacsta.simulator.agent as agent_module
from tests.e2e.conftest import phone_ports
from tests.security.conftest import Harness
from tests.security.test_lockout import (
    ATTACKER,
    SipUdp,
    challenge_params,
    register,
)

_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def rfc2069_answer(challenge: str, method: str, uri: str, username: str, password: str) -> str:
    """What an RFC 2069 phone sends: no qop, nc or cnonce, whatever the challenge offers."""
    ch = challenge_params(challenge)
    algorithm = ch.get("algorithm", "MD5").upper()
    h = _HASHES[algorithm]

    def hx(text: str) -> str:
        return h(text.encode()).hexdigest()

    ha1 = hx(f"{username}:{ch['realm']}:{password}")
    response = hx(f"{ha1}:{ch['nonce']}:{hx(f'{method}:{uri}')}")
    return (
        f'Digest username="{username}", realm="{ch["realm"]}", nonce="{ch["nonce"]}", '
        f'uri="{uri}", response="{response}", algorithm={algorithm}'
    )


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The simulated phones answer without qop; each (request URI, Authorization) is kept."""
    seen: list[tuple[str, str]] = []

    def answer(challenge: str, method: str, uri: str, username: str, password: str) -> str:
        value = rfc2069_answer(challenge, method, uri, username, password)
        seen.append((uri, value))
        return value

    monkeypatch.setattr(agent_module, "answer_challenge", answer)
    return seen


async def test_replayed_no_qop_register_is_refused_and_the_link_stays(
    harness: Harness, captured: list[tuple[str, str]]
) -> None:
    server = await harness.start_server()
    assert server.phones is not None
    sim = harness.simulation()
    victim = sim.add_phone("yealink", ["100"], transport="udp")
    await sim.start()
    await harness.wait_state(victim.mac, "ready")  # RFC 2069 phones keep working
    assert captured, "the phone answered a challenge"
    uri, stolen = captured[-1]
    link = server.phones.links[victim.mac]
    target = server.phones.targets[victim.mac]
    registrar = ("127.0.0.1", phone_ports(server)["udp"])

    for host in (ATTACKER, "127.0.0.1"):  # another address; the phone's own address
        attacker = await SipUdp.open(host, registrar[1])
        try:
            call_id = secrets.token_hex(8)
            replay = register(
                mac=victim.mac,
                local=attacker.local,
                server=registrar,
                call_id=call_id,
                cseq=7,
                contact=f"<sip:{victim.mac}@{attacker.local[0]}:{attacker.local[1]}>",
                auth=stolen,
                uri=uri,
            )
            reply = await attacker.ask(replay, call_id)
        finally:
            attacker.close()
        assert reply.status in (401, 403), (host, reply)

        # The phone's binding, target and link are untouched.
        assert server.phones.links.get(victim.mac) is link
        assert server.phones.targets[victim.mac] is target
        assert harness.state(victim.mac) == "ready"
        bindings = [b for b in server.phones.registrar.all_bindings() if victim.mac in b.aor]
        assert bindings and all(str(attacker.local[1]) not in str(b.contact) for b in bindings)

    # The phone itself re-registers (a fresh challenge) and stays linked.
    assert await victim.register() == 200
    assert harness.state(victim.mac) == "ready"
