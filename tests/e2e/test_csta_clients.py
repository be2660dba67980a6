"""CTI clients over CSTA XML/TCP (Annex J + ECMA-354) against the server and simulated phones."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.conftest import Harness, wait_until
from uacsta.clients.cstatcp import CstaClientError, CstaTcpClient
from uacsta.csta import codec
from uacsta.csta import messages as m
from uacsta.csta.framing import encode_frame
from uacsta.csta.types import ConnectionID, ForwardingType

A, B, C = "sip:100@sim.invalid", "sip:200@sim.invalid", "sip:300@sim.invalid"
IMMEDIATE = ForwardingType.FORWARD_IMMEDIATE


async def setup(
    harness: Harness, edition: codec.Edition = codec.Edition.ED3, *, journal: bool = True
):
    server = await harness.start_server(journal=journal)
    sim = harness.simulation()
    phones = [
        sim.add_phone("yealink", ["100"], transport="udp"),
        sim.add_phone("snom", ["200"], transport="tcp"),
        sim.add_phone("mitel", ["300"], transport="tcp"),
    ]
    phones[2].phone.lines[0].device_id = C  # plain device ID for readability
    await sim.start()
    for agent in phones:
        await harness.wait_state(agent.mac, "ready")
    client = await harness.csta_client(edition=edition)
    return server, sim, phones, client


async def monitor(client: CstaTcpClient, device: str) -> str:
    response = await client.request(m.MonitorStart(monitor_object=device))
    assert isinstance(response, m.MonitorStartResponse)
    back = await client.wait_for(m.BackInServiceEvent)
    assert back.monitor_cross_ref_id == response.monitor_cross_ref_id
    return response.monitor_cross_ref_id


async def events_until(client: CstaTcpClient, done, timeout: float = 5.0) -> list[m.CstaEvent]:
    """Collect events until ``done(events)`` holds."""
    got: list[m.CstaEvent] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done(got):
        message = await client.event(max(0.01, deadline - loop.time()))
        if isinstance(message, m.CstaEvent):
            got.append(message)
    return got


def of(events, xref) -> list[str]:
    return [type(e).__name__ for e in events if e.monitor_cross_ref_id == xref]


def seen(name: str, *xrefs: str):
    """A ``done`` predicate: ``name`` arrived on every monitor in ``xrefs``."""
    return lambda ev: all(name in of(ev, x) for x in xrefs)


def first(events, xref: str, kind: type) -> m.CstaEvent:
    return next(e for e in events if e.monitor_cross_ref_id == xref and isinstance(e, kind))


async def test_devices_monitors_and_a_call_between_two_phones(harness: Harness) -> None:
    # Without the server's own monitors: the test watches the phones' monitors released.
    _server, _sim, phones, client = await setup(harness, codec.Edition.ED5, journal=False)
    answer = await client.request(m.GetSwitchingFunctionDevices())
    assert isinstance(answer, m.GetSwitchingFunctionDevicesResponse)
    listing = await client.wait_for(m.SwitchingFunctionDevices)
    assert {e.device_id for e in listing.device_list} == {A, B, C}

    xa, xb = await monitor(client, "100"), await monitor(client, "tel:200")
    made = await client.request(m.MakeCall(calling_device="100", called_directory_number="200"))
    assert isinstance(made, m.MakeCallResponse) and made.calling_device.device_id == A
    events = await events_until(
        client,
        lambda ev: of(ev, xa)[-1:] == ["DeliveredEvent"] and of(ev, xb) == ["DeliveredEvent"],
    )
    assert of(events, xa) == ["ServiceInitiatedEvent", "OriginatedEvent", "DeliveredEvent"]
    ringing = next(e for e in events if e.monitor_cross_ref_id == xb)
    assert ringing.local_connection_info == "alerting"
    assert ringing.calling_device.value == A
    b_call = ringing.connection

    answered = await client.request(m.AnswerCall(call_to_be_answered=b_call))
    assert isinstance(answered, m.AnswerCallResponse)
    events = await events_until(client, lambda ev: len(ev) >= 2)
    assert sorted(of(events, xa) + of(events, xb)) == ["EstablishedEvent", "EstablishedEvent"]

    a_call = made.calling_device
    assert isinstance(await client.request(m.HoldCall(call_to_be_held=a_call)), m.HoldCallResponse)
    events = await events_until(client, lambda ev: "HeldEvent" in of(ev, xa))
    assert isinstance(
        await client.request(m.RetrieveCall(call_to_be_retrieved=a_call)), m.RetrieveCallResponse
    )
    await events_until(client, lambda ev: "RetrievedEvent" in of(ev, xa))
    digits = await client.request(
        m.GenerateDigits(connection_to_send_digits=a_call, characters_to_send="12#")
    )
    assert isinstance(digits, m.GenerateDigitsResponse)
    await events_until(client, lambda ev: "DigitsGeneratedEvent" in of(ev, xa))
    snap = await client.request(m.SnapshotDevice(snapshot_object="200"))
    assert isinstance(snap, m.SnapshotDeviceResponse)
    assert [s.local_connection_state for s in snap.snapshot_data] == ["connected"]

    cleared = await client.request(m.ClearConnection(connection_to_be_cleared=a_call))
    assert isinstance(cleared, m.ClearConnectionResponse)
    await events_until(client, seen("ConnectionClearedEvent", xa, xb))
    await client.close()
    # The client left without StopApplicationSession: both phone monitors are released.
    await wait_until(lambda: [p.received["MonitorStop"] for p in phones[:2]] == [1, 1])


async def test_dnd_forwarding_deflect_and_single_step_transfer(harness: Harness) -> None:
    _server, _sim, _phones, client = await setup(harness)
    await monitor(client, A)
    xb, xc = await monitor(client, B), await monitor(client, C)
    assert isinstance(
        await client.request(m.SetDoNotDisturb(device=B, do_not_disturb_on=True)),
        m.SetDoNotDisturbResponse,
    )
    await events_until(client, lambda ev: "DoNotDisturbEvent" in of(ev, xb))
    dnd = await client.request(m.GetDoNotDisturb(device="200"))
    assert dnd == m.GetDoNotDisturbResponse(do_not_disturb_on=True)
    await client.request(m.SetDoNotDisturb(device=B, do_not_disturb_on=False))

    fwd = m.SetForwarding(
        device=B,
        activate_forward=True,
        forwarding_type=IMMEDIATE,
        forward_dn="300",
    )
    assert isinstance(await client.request(fwd), m.SetForwardingResponse)
    await events_until(client, lambda ev: "ForwardingEvent" in of(ev, xb))
    listing = await client.request(m.GetForwarding(device=B))
    assert isinstance(listing, m.GetForwardingResponse)
    assert any(i.forward_dn == "300" and i.forward_status for i in listing.forwarding_list)
    await client.request(
        m.SetForwarding(device=B, activate_forward=False, forwarding_type=IMMEDIATE)
    )

    # 100 calls 200, 200 deflects the ringing call to 300.
    await client.request(m.MakeCall(calling_device=A, called_directory_number="200"))
    events = await events_until(client, lambda ev: "DeliveredEvent" in of(ev, xb))
    ringing = first(events, xb, m.DeliveredEvent)
    deflected = await client.request(
        m.DeflectCall(call_to_be_diverted=ringing.connection, new_destination="300")
    )
    assert isinstance(deflected, m.DeflectCallResponse)
    await events_until(client, lambda ev: "DivertedEvent" in of(ev, xb))
    events = await events_until(client, seen("DeliveredEvent", xc))
    assert first(events, xc, m.DeliveredEvent).last_redirection_device.value == B


async def test_consultation_transfer_and_conference(harness: Harness) -> None:
    _server, _sim, _phones, client = await setup(harness)
    xa, xb, xc = await monitor(client, A), await monitor(client, B), await monitor(client, C)

    async def call(frm: str, to: str, to_xref: str) -> tuple[ConnectionID, ConnectionID]:
        made = await client.request(m.MakeCall(calling_device=frm, called_directory_number=to))
        events = await events_until(client, lambda ev: "DeliveredEvent" in of(ev, to_xref))
        ringing = first(events, to_xref, m.DeliveredEvent)
        await client.request(m.AnswerCall(call_to_be_answered=ringing.connection))
        await events_until(client, lambda ev: "EstablishedEvent" in of(ev, to_xref))
        return made.calling_device, ringing.connection

    a_first, _ = await call(A, "200", xb)
    consult = await client.request(
        m.ConsultationCall(existing_call=a_first, consulted_device="300")
    )
    assert isinstance(consult, m.ConsultationCallResponse)
    events = await events_until(client, lambda ev: "DeliveredEvent" in of(ev, xc))
    ringing_c = first(events, xc, m.DeliveredEvent)
    await client.request(m.AnswerCall(call_to_be_answered=ringing_c.connection))
    await events_until(client, lambda ev: "EstablishedEvent" in of(ev, xc))
    transfer = await client.request(
        m.TransferCall(held_call=a_first, active_call=consult.initiated_call)
    )
    assert isinstance(transfer, m.TransferCallResponse)
    await events_until(client, seen("TransferredEvent", xa, xb, xc))

    # Conference: B (now talking to C) consults A back and conferences.
    b_calls = await client.request(m.SnapshotDevice(snapshot_object=B))
    b_conn = b_calls.snapshot_data[0].connection_identifier
    consult = await client.request(m.ConsultationCall(existing_call=b_conn, consulted_device="100"))
    events = await events_until(client, lambda ev: "DeliveredEvent" in of(ev, xa))
    ringing_a = first(events, xa, m.DeliveredEvent)
    await client.request(m.AnswerCall(call_to_be_answered=ringing_a.connection))
    await events_until(client, lambda ev: "EstablishedEvent" in of(ev, xa))
    conf = await client.request(
        m.ConferenceCall(held_call=b_conn, active_call=consult.initiated_call)
    )
    assert isinstance(conf, m.ConferenceCallResponse)
    # A (a Yealink) was conferenced by B: the firmware reports only its own conferences.
    await events_until(client, seen("ConferencedEvent", xb, xc))

    # A leaves the conference; then B blind-transfers its call (with C) to A.
    await client.request(m.ClearConnection(connection_to_be_cleared=ringing_a.connection))
    await events_until(client, lambda ev: "ConnectionClearedEvent" in of(ev, xa))
    sst = await client.request(m.SingleStepTransferCall(active_call=b_conn, transferred_to="100"))
    assert isinstance(sst, m.SingleStepTransferCallResponse), sst
    await events_until(client, lambda ev: "DeliveredEvent" in of(ev, xa))


async def test_two_clients_share_one_monitor_and_phone_loss_is_reported(harness: Harness) -> None:
    server, _sim, phones, first = await setup(harness)
    second = await harness.csta_client()
    x1, x2 = await monitor(first, A), await monitor(second, A)
    assert x1 != x2
    assert phones[0].received["MonitorStart"] == 1  # one monitor point in the phone
    await first.request(m.SetDoNotDisturb(device=A, do_not_disturb_on=True))
    e1, e2 = await first.wait_for(m.DoNotDisturbEvent), await second.wait_for(m.DoNotDisturbEvent)
    assert (e1.monitor_cross_ref_id, e2.monitor_cross_ref_id) == (x1, x2)

    phones[0].stop_answering()  # the phone goes silent: lost at the next keep-alive
    assert server.phones is not None
    await server.phones.links[phones[0].mac].stop("test: link dropped", bye=False)
    out1 = await first.wait_for(m.OutOfServiceEvent)
    assert out1.monitor_cross_ref_id == x1
    await second.wait_for(m.OutOfServiceEvent)
    phones[0].stop_answering(False)
    back = await first.wait_for(m.BackInServiceEvent)
    assert back.monitor_cross_ref_id == x1 and back.device.value == A
    assert phones[0].received["MonitorStart"] == 2  # the monitor is restored in the phone
    await second.wait_for(m.BackInServiceEvent)
    await first.close()
    await second.close()


async def test_errors_bad_credentials_unknown_devices_malformed_xml(harness: Harness) -> None:
    _server, _sim, _phones, client = await setup(harness)
    with pytest.raises(CstaClientError):
        await harness.csta_client(password="wrong")

    unknown = await client.request(m.MonitorStart(monitor_object="sip:999@nowhere"))
    assert unknown == m.CSTAErrorCode.operation("invalidDeviceID")
    unknown_call = await client.request(m.SnapshotCall(snapshot_object=ConnectionID("1", A)))
    # Yealink has no SnapshotCall: the server answers from the calls it tracks, and there
    # is no call 1 at the line.
    assert unknown_call == m.CSTAErrorCode.operation("invalidCallID")
    assert client._writer is not None
    client._writer.write(encode_frame("0777", b"<MakeCall><oops>"))
    reply = await client.request(m.RequestSystemStatus())
    assert isinstance(reply, m.RequestSystemStatusResponse)  # still serving
    assert not client.closed.is_set()
    await client.close()


async def test_a_phone_that_does_not_answer_gives_a_timeout_error(harness: Harness) -> None:
    _server, _sim, phones, client = await setup(harness)
    phones[1].stop_answering()
    answer = await client.request(m.GetDoNotDisturb(device=B))
    assert answer == m.CSTAErrorCode.timeout()  # not outOfService: the link stays up
    phones[1].stop_answering(False)
    assert harness.state(phones[1].mac) == "ready"
    ok = await client.request(m.GetDoNotDisturb(device=B))
    assert isinstance(ok, m.GetDoNotDisturbResponse)


async def test_requests_in_flight_to_one_phone_are_bounded(harness: Harness) -> None:
    from uacsta.phones.link import MAX_IN_FLIGHT

    _server, _sim, phones, client = await setup(harness)
    phones[1].stop_answering()
    answers = await asyncio.gather(
        *(client.request(m.GetDoNotDisturb(device=B)) for _ in range(MAX_IN_FLIGHT + 3))
    )
    busy = m.CSTAErrorCode.performance_management("performanceLimitExceeded")
    assert answers.count(busy) == 3
    assert answers.count(m.CSTAErrorCode.timeout()) == MAX_IN_FLIGHT
