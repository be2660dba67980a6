"""Phones side end to end: registrar, inventory, CSTA links, keep-alive, loss and recovery.

Real server, real SIP over UDP/TCP/TLS on loopback, simulated phones as independent UAs.
"""

from __future__ import annotations

import asyncio

from typer.testing import CliRunner

from tests.e2e.conftest import Harness, wait_until
from uacsta.cli import app


async def test_phones_of_each_transport_register_link_and_report_lines(harness: Harness) -> None:
    server = await harness.start_server()
    sim = harness.simulation()
    yealink = sim.add_phone("yealink", ["100"], transport="udp")
    snom = sim.add_phone("snom", ["200", "201"], transport="tcp")
    mitel = sim.add_phone("mitel", ["300"], transport="tls")
    await sim.start()
    for agent in (yealink, snom, mitel):
        await harness.wait_state(agent.mac, "ready")
    inv = server.inventory
    assert inv is not None
    assert inv.get(snom.mac).lines == ["sip:200@sim.invalid", "sip:201@sim.invalid"]
    assert inv.get(mitel.mac).lines == ["sip:300@sim.invalid;user=phone"]
    rec = inv.get(yealink.mac)
    assert (rec.vendor, rec.model, rec.transport) == ("yealink", "T46G", "udp")
    assert inv.get(mitel.mac).transport == "tls"
    # Set-up order: RequestSystemStatus in the INVITE, SystemRegister only where supported.
    assert snom.received["SystemRegister"] == 1
    # The Yealink firmware answers SystemRegister (its source, newer than estos §2.4); Mitel not.
    assert yealink.received["SystemRegister"] == 1
    assert mitel.received["SystemRegister"] == 0
    for agent in (yealink, snom, mitel):
        assert agent.received["RequestSystemStatus"] >= 1
        assert agent.received["GetSwitchingFunctionDevices"] == 1
    devices = {d.device_id for d in server.hub.switch.ready_devices()}
    assert devices == {
        "sip:100@sim.invalid",
        "sip:200@sim.invalid",
        "sip:201@sim.invalid",
        "sip:300@sim.invalid;user=phone",
    }


async def test_wrong_password_is_refused_and_logged(harness: Harness, caplog) -> None:
    server = await harness.start_server()
    sim = harness.simulation(password="wrong")
    agent = sim.add_phone("yealink", ["100"], transport="udp")
    await sim.start()
    await wait_until(lambda: agent.last_register_status is not None, what="REGISTER answered")
    assert agent.last_register_status == 403
    assert server.inventory is not None and server.inventory.get(agent.mac) is None
    assert any(agent.mac in r.getMessage() and "refused" in r.getMessage() for r in caplog.records)


async def test_keepalive_and_session_refresh_are_seen_on_the_wire(harness: Harness) -> None:
    await harness.start_server(keepalive_interval=0.3, session_expires=2)
    sim = harness.simulation()
    agent = sim.add_phone("snom", ["200"], transport="tcp")
    await sim.start()
    await harness.wait_state(agent.mac, "ready")
    first = agent.received["RequestSystemStatus"]
    await wait_until(lambda: agent.received["RequestSystemStatus"] >= first + 2, what="keep-alives")
    # Session-Expires 2 s with uacsta as refresher: a re-INVITE after ~1 s.
    await wait_until(lambda: agent.sip_received["INVITE"] >= 1, what="session refresh re-INVITE")
    assert harness.state(agent.mac) == "ready"


async def test_silent_phone_is_lost_within_one_keepalive_and_relinked(harness: Harness) -> None:
    server = await harness.start_server(keepalive_interval=0.5, csta_timeout=0.5)
    sim = harness.simulation()
    agent = sim.add_phone("yealink", ["100"], transport="udp")
    await sim.start()
    await harness.wait_state(agent.mac, "ready")
    loop = asyncio.get_running_loop()
    agent.stop_answering()
    started = loop.time()
    await wait_until(lambda: harness.state(agent.mac) != "ready", timeout=5, what="loss")
    # One keep-alive interval plus the CSTA timeout.
    assert loop.time() - started < 0.5 + 0.5 + 0.5
    assert server.hub.switch.phones[agent.mac].ready is False
    agent.stop_answering(False)
    await harness.wait_state(agent.mac, "ready")


async def test_tcp_drop_and_unregister(harness: Harness) -> None:
    server = await harness.start_server()
    assert server.inventory is not None
    sim = harness.simulation()
    agent = sim.add_phone("snom", ["200"], transport="tcp")
    await sim.start()
    await harness.wait_state(agent.mac, "ready")
    # The stored binding: the contact, no Path (registered directly).
    record = server.inventory.get(agent.mac)
    assert record.contact is not None and record.contact.startswith(f"sip:{agent.mac}@")
    assert record.path == []
    agent.drop_connection()
    await harness.wait_state(agent.mac, "offline")
    assert record.contact is None  # gone with the connection it was bound to
    assert await agent.register() == 200  # the phone comes back
    await harness.wait_state(agent.mac, "ready")
    assert record.contact is not None
    assert await agent.unregister() == 200
    await harness.wait_state(agent.mac, "offline")
    assert record.contact is None


async def test_restart_keeps_inventory_and_settings_and_relinks(harness: Harness) -> None:
    server = await harness.start_server()
    sim = harness.simulation()
    agent = sim.add_phone("yealink", ["100"], transport="tcp")
    other = sim.add_phone("fanvil", ["101"], transport="tcp")
    await sim.start()
    await harness.wait_state(agent.mac, "ready")
    await harness.wait_state(other.mac, "ready")
    assert server.phones is not None
    await server.phones.set_enabled(other.mac, False)
    assert harness.state(other.mac) == "disabled"
    await sim.close()
    harness.sims.clear()
    await harness.stop_server()

    server = await harness.start_server()
    assert server.inventory is not None
    assert {r.mac for r in server.inventory.all()} == {agent.mac, other.mac}
    assert server.inventory.get(other.mac).enabled is False
    assert server.inventory.get(agent.mac).lines == ["sip:100@sim.invalid"]
    sim = harness.simulation()
    again = sim.add_phone("yealink", ["100"], transport="tcp", mac=agent.mac)
    again_other = sim.add_phone("fanvil", ["101"], transport="tcp", mac=other.mac)
    await sim.start()
    await harness.wait_state(again.mac, "ready")
    await wait_until(lambda: again_other.registrations >= 1, what="disabled phone registered")
    assert harness.state(other.mac) == "disabled"
    assert not again_other.linked.is_set()


async def test_cli_lists_and_toggles_phones_of_a_running_server(harness: Harness) -> None:
    server = await harness.start_server()
    sim = harness.simulation()
    agent = sim.add_phone("auerswald", ["400"], transport="udp")
    await sim.start()
    await harness.wait_state(agent.mac, "ready")
    data = str(server.data_dir)
    runner = CliRunner()
    env = {"UACSTA_STORE__PATH": data}

    def cli(*args: str):
        return runner.invoke(app, list(args), env=env)

    listing = await asyncio.to_thread(cli, "phones")
    assert listing.exit_code == 0, listing.output
    assert "00:09:52" in listing.output and "ready" in listing.output
    assert "auerswald COMfortel 2600 IP (simulated)" in listing.output
    result = await asyncio.to_thread(cli, "phones", "disable", agent.mac.lower())
    assert result.exit_code == 0, result.output
    await harness.wait_state(agent.mac, "disabled")
    result = await asyncio.to_thread(cli, "phones", "enable", agent.mac)
    assert result.exit_code == 0, result.output
    await harness.wait_state(agent.mac, "ready")
    bad = await asyncio.to_thread(cli, "phones", "enable", "not-a-mac")
    assert bad.exit_code == 2 and "not a MAC" in bad.output


async def test_new_phones_wait_for_enable_when_auto_activate_is_off(harness: Harness) -> None:
    server = await harness.start_server(auto_activate=False)
    sim = harness.simulation()
    agent = sim.add_phone("yealink", ["100"], transport="udp")
    await sim.start()
    await wait_until(lambda: agent.registrations >= 1, what="registered")
    await harness.wait_state(agent.mac, "disabled")
    assert not agent.linked.is_set()
    assert server.phones is not None
    await server.phones.set_enabled(agent.mac, True)
    await harness.wait_state(agent.mac, "ready")


async def test_bye_from_the_phone_relinks_after_backoff(harness: Harness) -> None:
    server = await harness.start_server()
    sim = harness.simulation()
    agent = sim.add_phone("snom", ["200"], transport="tcp")
    await sim.start()
    await harness.wait_state(agent.mac, "ready")
    usage = agent.usage
    assert usage is not None
    bye = await agent.ua.request("BYE", usage)
    assert bye.status_code == 200
    await wait_until(lambda: harness.state(agent.mac) != "ready", what="link dropped")
    assert server.hub.switch.phones[agent.mac].ready is False
    await harness.wait_state(agent.mac, "ready")  # re-linked after relink_backoff
    assert agent.received["GetSwitchingFunctionDevices"] == 2


async def test_line_change_reported_by_the_phone_updates_devices(harness: Harness) -> None:
    server = await harness.start_server()
    sim = harness.simulation()
    agent = sim.add_phone("snom", ["200"], transport="tcp")
    await sim.start()
    await harness.wait_state(agent.mac, "ready")
    from uacsta.csta import messages as m
    from uacsta.simulator.callmodel import Line

    phone = agent.phone
    phone.lines.append(Line(number="202", device_id="sip:202@sim.invalid"))
    agent.enqueue(m.SwFunctionDevicesChanged())
    await wait_until(
        lambda: "sip:202@sim.invalid" in server.inventory.get(agent.mac).lines,
        what="new line in the inventory",
    )
    assert server.hub.switch.devices.resolve("202") is not None


async def test_settings_changed_at_runtime_apply_and_persist(harness: Harness) -> None:
    from uacsta.config import ConfigError

    server = await harness.start_server()
    try:
        await server.ops.update_settings({"phones": {"registration_expires": 5}})
    except ConfigError as exc:
        assert "registration_expires" in str(exc)  # below the documented minimum of 30 s
    else:
        raise AssertionError("an invalid value was accepted")
    restarted = await server.ops.update_settings(
        {"phones": {"password": "new-secret", "listen": ["udp:127.0.0.1:0"]}}
    )
    assert restarted == ["phone listeners"]
    sim = harness.simulation(password="new-secret")
    agent = sim.add_phone("yealink", ["100"], transport="udp")
    await sim.start()
    await harness.wait_state(agent.mac, "ready")
    await sim.close()
    harness.sims.clear()
    await harness.stop_server()
    server = await harness.start_server()
    assert server.settings.phones.password == "new-secret"
    assert server.settings.phones.listen == ["udp:127.0.0.1:0"]


async def test_repeated_wrong_passwords_block_the_source(harness: Harness, caplog) -> None:
    server = await harness.start_server(max_auth_failures=3, block_time=30.0)
    sim = harness.simulation(password="wrong")
    agent = sim.add_phone("yealink", ["100"], transport="udp")
    await agent.start(register=False)
    for _ in range(3):
        assert await agent.register() == 403
    assert any("blocking 127.0.0.1" in r.getMessage() for r in caplog.records)
    agent.password = "phone-secret"  # even the right password is refused while blocked
    assert await agent.register() == 403
    assert server.phones is not None and server.phones.auth_failures == 3


async def test_link_setups_wait_for_a_slot_beyond_max_parallel_setups(
    harness: Harness, monkeypatch
) -> None:
    from uacsta.phones.link import PhoneLink

    running = {"now": 0, "peak": 0}
    establish, learn = PhoneLink._establish, PhoneLink._learn_lines

    async def counted_establish(self: PhoneLink) -> None:
        running["now"] += 1
        running["peak"] = max(running["peak"], running["now"])
        await establish(self)

    async def counted_learn(self: PhoneLink) -> None:
        try:
            await learn(self)
        finally:
            running["now"] -= 1

    monkeypatch.setattr(PhoneLink, "_establish", counted_establish)
    monkeypatch.setattr(PhoneLink, "_learn_lines", counted_learn)
    await harness.start_server(max_parallel_setups=2)
    sim = harness.simulation()
    agents = [sim.add_phone("yealink", [str(100 + i)], transport="udp") for i in range(6)]
    await sim.start()
    for agent in agents:
        await harness.wait_state(agent.mac, "ready")
    assert running == {"now": 0, "peak": 2}


async def test_a_phone_is_linked_from_its_stored_binding(harness: Harness) -> None:
    """Without an edge the INVITE goes to the stored contact; nothing stored, or a first hop
    that cannot be reached, links nothing (and leaves the current link alone)."""
    server = await harness.start_server()
    assert server.phones is not None and server.inventory is not None
    phones = server.phones
    sim = harness.simulation()
    agent = sim.add_phone("snom", ["200"], transport="udp")
    await sim.start()
    await harness.wait_state(agent.mac, "ready")
    assert not await phones.link_stored("000413FFFFFF")  # not in the inventory
    first = phones.links[agent.mac]
    assert await phones.link_stored(agent.mac)

    def relinked() -> bool:
        link = phones.links.get(agent.mac)
        return link is not None and link is not first and harness.state(agent.mac) == "ready"

    await wait_until(relinked, what="linked again from the stored contact")
    assert agent.registrations == 1
    record = server.inventory.get(agent.mac)
    assert record is not None
    current = phones.links[agent.mac]
    record.contact = f"sip:{agent.mac}@127.0.0.1:1;transport=tcp"  # nobody listens there
    assert not await phones.link_stored(agent.mac)
    assert phones.links[agent.mac] is current
    record.contact = None
    assert not await phones.link_stored(agent.mac)
