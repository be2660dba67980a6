"""A simulated Yealink built to the firmware document, against the real server.

The simulated phone is the firmware's CSTA processor (:mod:`uacsta.simulator.yealink`): it reads
requests and writes its documents itself, never with the project's codec, so what passes here
passes against the firmware's wire form (``yealink-uacsta-behaviour.md``): the line list as
``deviceList/device/deviceID`` in the misspelled namespace, ``TransferedEvent``, silence instead
of errors, ``newDestination/device``, ``charactersToSend``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from websockets.asyncio.client import connect

from tests.e2e.conftest import Harness, make_settings, wait_until
from tests.gateways.test_tr87 import Tr87Client
from tests.web.test_api import Events
from uacsta.clients.cstatcp import CstaTcpClient
from uacsta.config import ClientAccount
from uacsta.csta import codec
from uacsta.csta import messages as m
from uacsta.csta.types import ConnectionID
from uacsta.server import Server
from uacsta.simulator.agent import PhoneAgent
from uacsta.simulator.runtime import Simulation
from uacsta.web.auth import Auth

L100, L101, L200 = "sip:100@sim.invalid", "sip:101@sim.invalid", "sip:200@sim.invalid"


async def _yealink(harness: Harness, **server: Any) -> tuple[Simulation, PhoneAgent, PhoneAgent]:
    await harness.start_server(**server)
    sim = harness.simulation(external_answer_delay=0.05)
    yealink = sim.add_phone("yealink", ["100", "101"], transport="tcp")
    assert yealink.firmware is not None
    yealink.firmware.accounts[1].tel = "+4930101"  # account.2.csta_number
    other = sim.add_phone("snom", ["200"], transport="tcp")
    await sim.start()
    for agent in (yealink, other):
        await harness.wait_state(agent.mac, "ready")
    return sim, yealink, other


async def _monitor(client: CstaTcpClient, device: str) -> str:
    started = await client.request(m.MonitorStart(monitor_object=device))
    assert isinstance(started, m.MonitorStartResponse), started
    await client.wait_for(m.BackInServiceEvent)
    return str(started.monitor_cross_ref_id)


async def _event(client: CstaTcpClient, kind: type[m.CstaEvent], xref: str) -> Any:
    """The next ``kind`` event on monitor ``xref`` (others skipped)."""
    while True:
        event = await client.event(5.0)
        if isinstance(event, kind) and event.monitor_cross_ref_id == xref:
            return event


async def test_yealink_links_with_its_real_lines(harness: Harness) -> None:
    _sim, yealink, _other = await _yealink(harness)
    fw = yealink.firmware
    assert fw is not None
    # What the phone listed, as the firmware writes it (tel account first, the account that
    # registers to uacsta itself last) ...
    assert fw.device_list()[:2] == [
        "sip:101@sim.invalid:5060;tel=+4930101",
        "sip:100@sim.invalid:5060",
    ]
    # ... and what uacsta learned: the lines as clients name them, not the registration AOR.
    record = harness.server.inventory.get(yealink.mac)  # type: ignore[union-attr]
    assert record is not None and record.lines == [L101, L100]

    client = await harness.csta_client()
    assert isinstance(
        await client.request(m.GetSwitchingFunctionDevices()), m.GetSwitchingFunctionDevicesResponse
    )
    listing = await client.wait_for(m.SwitchingFunctionDevices)
    assert isinstance(listing, m.SwitchingFunctionDevices)
    assert {e.device_id for e in listing.device_list} == {L100, L101, L200}

    # The phone is asked in its own terms: the account string it listed.
    xref = await _monitor(client, "101")
    assert fw.accounts[1].monitored_as == "sip:101@sim.invalid:5060"
    # One MonitorStart per line, the server's own (call journal); the client's shares it.
    assert fw.received.count("MonitorStart") == 2
    # Its events name the line as the client does.
    _sim.incoming_call("101", "0301234567")
    delivered = await _event(client, m.DeliveredEvent, xref)
    assert delivered.connection.device_id == L101
    assert delivered.alerting_device.value == L101


async def _talking(sim: Simulation, client: CstaTcpClient, xref: str) -> ConnectionID:
    """Line 100 calls an outside number that answers; returns the client's connection."""
    made = await client.request(
        m.MakeCall(calling_device="100", called_directory_number="0301234567")
    )
    assert isinstance(made, m.MakeCallResponse), made
    # The firmware echoes the callingDevice it was sent (its own string): the client sees its own.
    call = made.calling_device
    assert call is not None and call.device_id == L100
    await _event(client, m.EstablishedEvent, xref)
    return call


async def test_generate_digits_deflect_transfer_and_mwi_over_csta_tcp(harness: Harness) -> None:
    sim, yealink, other = await _yealink(harness)
    fw = yealink.firmware
    assert fw is not None
    client = await harness.csta_client()
    xref = await _monitor(client, L100)

    # GenerateDigits: the firmware reads charactersToSend (a child of the request).
    call = await _talking(sim, client, xref)
    answer = await client.request(
        m.GenerateDigits(connection_to_send_digits=call, characters_to_send="12")
    )
    assert isinstance(answer, m.GenerateDigitsResponse), answer
    first = await _event(client, m.DigitsGeneratedEvent, xref)
    second = await _event(client, m.DigitsGeneratedEvent, xref)
    assert (first.digit_generated_list, second.digit_generated_list) == ("1", "2")

    # Blind transfer: the phone reports TransferedEvent; the client gets TransferredEvent.
    moved = await client.request(m.SingleStepTransferCall(active_call=call, transferred_to="200"))
    assert isinstance(moved, m.SingleStepTransferCallResponse), moved
    transferred = await _event(client, m.TransferredEvent, xref)
    assert str(transferred.cause) == "singleStepTransfer"
    assert transferred.transferring_device.value == L100
    await wait_until(lambda: any(leg.state == "alerting" for leg in other.phone.legs()))
    other.phone.hangup("200", sim.now())
    sim.flush()

    # DeflectCall: the firmware reads the target from newDestination/device only.
    sim.incoming_call("100", "0309876543")
    ringing = await _event(client, m.DeliveredEvent, xref)
    deflected = await client.request(
        m.DeflectCall(call_to_be_diverted=ringing.connection, new_destination="200")
    )
    assert isinstance(deflected, m.DeflectCallResponse), deflected
    diverted = await _event(client, m.DivertedEvent, xref)
    assert diverted.diverting_device.value == L100
    await wait_until(lambda: any(leg.state == "alerting" for leg in other.phone.legs()))

    other.phone.hangup("200", sim.now())
    sim.flush()
    await wait_until(lambda: not other.phone.legs() and not yealink.phone.legs())

    # Attended transfer: consult 200, then join: TransferedEvent with both old calls.
    call = await _talking(sim, client, xref)
    consult = await client.request(m.ConsultationCall(existing_call=call, consulted_device="200"))
    assert isinstance(consult, m.ConsultationCallResponse), consult
    assert consult.initiated_call is not None and consult.initiated_call.device_id == L100
    await wait_until(lambda: any(leg.state == "alerting" for leg in other.phone.legs()))
    other.phone.answer("200", sim.now())
    sim.flush()
    await _event(client, m.EstablishedEvent, xref)
    joined = await client.request(
        m.TransferCall(held_call=call, active_call=consult.initiated_call)
    )
    assert isinstance(joined, m.TransferCallResponse), joined
    transferred = await _event(client, m.TransferredEvent, xref)
    assert str(transferred.cause) == "transfer"
    assert transferred.secondary_old_call is not None
    await wait_until(lambda: not yealink.phone.legs())

    # MWI: the firmware answers its MWI subscription setting.
    mwi = await client.request(m.GetMessageWaitingIndicator(device="100"))
    assert mwi == m.GetMessageWaitingIndicatorResponse(message_waiting_on=True)
    fw.accounts[0].mwi_subscription = False
    mwi = await client.request(m.GetMessageWaitingIndicator(device="100"))
    assert mwi == m.GetMessageWaitingIndicatorResponse(message_waiting_on=False)


async def test_silent_errors_are_answered_at_once_over_csta_tcp(harness: Harness) -> None:
    sim, yealink, _other = await _yealink(harness)
    fw = yealink.firmware
    assert fw is not None
    client = await harness.csta_client()
    xref = await _monitor(client, L100)
    call = await _talking(sim, client, xref)
    asked = list(fw.received)

    # Predictable from the request: the firmware would stay silent; uacsta answers instead.
    no_digits = await client.request(m.GenerateDigits(connection_to_send_digits=call))
    assert no_digits == m.CSTAErrorCode.operation("invalidParameterValue")
    no_target = await client.request(m.DeflectCall(call_to_be_diverted=call))
    assert no_target == m.CSTAErrorCode.operation("invalidDestination")
    # A service the firmware does not implement (it would answer <unspecified/>).
    set_mwi = await client.request(
        m.SetMessageWaitingIndicator(device="100", message_waiting_on=True)
    )
    assert set_mwi == m.CSTAErrorCode.operation("serviceNotSupported")
    assert fw.received == asked  # none of them reached the phone

    # Not predictable (a well-formed call ID the phone does not know): the phone stays
    # silent and the client gets the timeout error after phones.csta_timeout.
    silent = await client.request(m.HoldCall(call_to_be_held=ConnectionID("4711", L100)))
    assert silent == m.CSTAErrorCode.timeout()
    assert fw.received[len(asked) :] == ["HoldCall"]


async def test_json_api_mwi_features_digits_and_silent_errors(harness: Harness) -> None:
    _sim, yealink, _other = await _yealink(harness)
    fw = yealink.firmware
    server = harness.server
    assert fw is not None and server is not None and server.store is not None
    _id, token = Auth(server.store).create_token("tests")
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{server.http_port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=15.0,
    ) as http:
        r = await http.get("/api/v1/devices/100/message-waiting")
        assert (r.status_code, r.json()) == (200, {"on": True})

        r = await http.get("/api/v1/devices/100/features")
        assert r.status_code == 200, r.text
        features = r.json()
        assert (features["device"], features["vendor"]) == (L100, "Yealink")
        services = features["services"]
        assert services["GetMessageWaitingIndicator"]["supported"] is True
        assert "subscription" in services["GetMessageWaitingIndicator"]["note"]
        refused = services["SetMessageWaitingIndicator"]
        assert refused["supported"] is False
        assert refused["error"] == "operation/serviceNotSupported"
        assert "<unspecified/>" in refused["reason"]

        r = await http.post("/api/v1/devices/100/calls", json={"to": "0301234567"})
        assert r.status_code == 201, r.text
        call_id = r.json()["call_id"]
        await wait_until(lambda: any(leg.state == "connected" for leg in yealink.phone.legs()))
        r = await http.post(f"/api/v1/devices/100/calls/{call_id}/digits", json={"digits": "9"})
        assert r.status_code == 200, r.text
        assert "GenerateDigits" in fw.received

        # SetMWI has no REST route. The firmware has no SnapshotCall: the server answers it
        # from the calls it tracks, without asking the phone.
        r = await http.get(f"/api/v1/devices/100/calls/{call_id}")
        assert r.status_code == 200, r.text
        assert r.json()["devices"] and {d["call_id"] for d in r.json()["devices"]} == {call_id}
        assert "SnapshotCall" not in fw.received

        # A call ID the firmware cannot read (atoi gives 0: no call) would be left unanswered:
        # answered at once, with why. A well-formed unknown one: the phone's silence, 504.
        asked = list(fw.received)
        r = await http.post("/api/v1/devices/100/calls/abc/hold")
        assert r.status_code == 409, r.text
        assert r.json()["csta_error"] == {"category": "operation", "value": "invalidCallID"}
        assert "would leave it unanswered" in r.json()["detail"]
        assert fw.received == asked
        r = await http.post("/api/v1/devices/100/calls/4711/hold")
        assert r.status_code == 504, r.text
        assert fw.received[len(asked) :] == ["HoldCall"]


async def test_tr87_client_gets_the_refusal_reason_in_a_warning(harness: Harness) -> None:
    _sim, yealink, _other = await _yealink(harness)
    fw = yealink.firmware
    assert fw is not None and harness.server is not None and harness.server.tr87 is not None
    client = Tr87Client(harness.server.tr87.ua.transport.listener("tcp").port)
    await client.start()
    try:
        _first, second = await client.invite(user="crm", password="crm-secret")
        assert second is not None and second.status_code == 200
        request = m.SetMessageWaitingIndicator(device="100", message_waiting_on=True)
        response = await client.info(codec.encode(request, codec.Edition.ED5))
        assert response.status_code == 200
        assert codec.decode(response.body) == m.CSTAErrorCode.operation("serviceNotSupported")
        assert response.header("Warning") == (
            f'399 uacsta "Yealink phone {yealink.mac}: SetMessageWaitingIndicator is not '
            'implemented by the Yealink firmware (it answers <unspecified/> to it)"'
        )
        assert "SetMessageWaitingIndicator" not in fw.received
        # A reason holding what a client sent cannot break the header.
        sneaky = m.HoldCall(call_to_be_held=ConnectionID('1"\r\nX-Evil: 1', L100))
        response = await client.info(codec.encode(sneaky, codec.Edition.ED5))
        warning = response.header("Warning") or ""
        assert warning.startswith('399 uacsta "') and warning.count('"') == 2
        assert response.header("X-Evil") is None
    finally:
        await client.close()


async def test_yealink_account_change_is_relearned(harness: Harness) -> None:
    _sim, yealink, _other = await _yealink(harness)
    fw = yealink.firmware
    assert fw is not None
    client = await harness.csta_client()
    xref = await _monitor(client, "101")
    # Account 2 is disabled on the phone: it says SwFunctionDevicesChanged, uacsta re-reads.
    fw.accounts.pop(1)
    yealink.firmware_accounts_changed()
    assert harness.server is not None and harness.server.inventory is not None
    inventory = harness.server.inventory

    def lines() -> list[str]:
        record = inventory.get(yealink.mac)
        return record.lines if record is not None else []

    await wait_until(lambda: lines() == [L100], what="line 101 gone")
    assert fw.received.count("GetSwitchingFunctionDevices") == 2
    ended = await client.event(5.0)  # the client's monitor of 101 ends (whatever its form)
    assert getattr(ended, "monitor_cross_ref_id", None) == xref


async def test_json_api_digits_transfer_and_deflect_with_websocket_events(
    harness: Harness,
) -> None:
    sim, yealink, other = await _yealink(harness)
    server = harness.server
    assert server is not None and server.store is not None
    _id, token = Auth(server.store).create_token("tests")
    base = f"127.0.0.1:{server.http_port}"
    async with (
        httpx.AsyncClient(
            base_url=f"http://{base}", headers={"Authorization": f"Bearer {token}"}, timeout=15.0
        ) as http,
        connect(f"ws://{base}/api/v1/events?token={token}") as ws,
    ):
        events = Events(ws)
        await events.send({"subscribe": ["100"]})
        assert (await events.until("subscribed", "100"))["ok"] is True
        await events.until("event", "100", "BackInServiceEvent")

        r = await http.post("/api/v1/devices/100/calls", json={"to": "0301234567"})
        assert r.status_code == 201, r.text
        call = quote(r.json()["call_id"], safe="")
        await events.until("event", "100", "EstablishedEvent")
        r = await http.post(f"/api/v1/devices/100/calls/{call}/digits", json={"digits": "7"})
        assert r.status_code == 200, r.text
        digits = await events.until("event", "100", "DigitsGeneratedEvent")
        assert digits["data"]["digit_generated_list"] == "7"

        # The phone's TransferedEvent reaches the WebSocket as TransferredEvent.
        r = await http.post(
            f"/api/v1/devices/100/calls/{call}/single-step-transfer", json={"to": "200"}
        )
        assert r.status_code == 200, r.text
        moved = await events.until("event", "100", "TransferredEvent")
        assert moved["data"]["transferring_device"] == L100
        await wait_until(lambda: any(leg.state == "alerting" for leg in other.phone.legs()))
        other.phone.hangup("200", sim.now())
        sim.flush()

        # Deflect an incoming call (the firmware reads newDestination/device).
        events.backlog.clear()  # the outgoing call's ringback DeliveredEvent waits there
        sim.incoming_call("100", "0309876543")
        ringing = await events.until("event", "100", "DeliveredEvent")
        incoming = quote(ringing["data"]["connection"]["call_id"], safe="")
        r = await http.post(f"/api/v1/devices/100/calls/{incoming}/deflect", json={"to": "200"})
        assert r.status_code == 200, r.text
        await events.until("event", "100", "DivertedEvent")
        await wait_until(lambda: any(leg.state == "alerting" for leg in other.phone.legs()))
        assert yealink.firmware is not None and "DeflectCall" in yealink.firmware.received


async def test_get_csta_features_for_an_account_bound_to_the_yealink_line(
    harness: Harness, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path / "data")
    settings.clients.accounts.append(
        ClientAccount(name="desk", password="desk-secret-1", devices=["100"])
    )
    harness.server = Server(settings)
    await harness.server.start()
    sim = harness.simulation()
    yealink = sim.add_phone("yealink", ["100"], transport="tcp")
    other = sim.add_phone("generic", ["200"], transport="tcp")
    await sim.start()
    for agent in (yealink, other):
        await harness.wait_state(agent.mac, "ready")

    desk = await harness.csta_client("desk", "desk-secret-1")
    bound = await desk.request(m.GetCSTAFeatures())
    assert isinstance(bound, m.GetCSTAFeaturesResponse), bound
    # (SnapshotServList's members are not OPTIONAL in ECMA-285: it is written whole, so
    # SnapshotCall cannot be told apart there.)
    assert {"getMessageWaitingIndicator", "reconnectCall"} <= bound.supported_services
    assert not {"setMessageWaitingIndicator", "clearCall", "dialDigits"} & bound.supported_services
    crm = await harness.csta_client()
    everything = await crm.request(m.GetCSTAFeatures())
    assert isinstance(everything, m.GetCSTAFeaturesResponse)
    assert {"setMessageWaitingIndicator", "clearCall"} <= everything.supported_services
