"""The client-gateway role of the uaCSTA dialog: what the TR/87 gateway relies on."""

from __future__ import annotations

from uacsta.csta import codec
from uacsta.csta import messages as m
from uacsta.sip.message import Request
from uacsta.tr87 import CstaDialog, Established, Lost, PeerRequest, Role, SendRequest, SendResponse

ED5 = "http://www.ecma-international.org/standards/ecma-323/csta/ed5"


def invite(body: bytes, **extra: str) -> Request:
    headers = {"Content_Type": "application/csta+xml", **extra}
    return Request(
        method="INVITE",
        uri="sip:uacsta@server",
        headers=tuple((k.replace("_", "-"), v) for k, v in headers.items()),
        body=body,
    )


def test_the_owner_answers_the_invite_body_in_the_200() -> None:
    d = CstaDialog(role=Role.CLIENT_GATEWAY, min_se=120)
    first = invite(f"<GetCSTAFeatures xmlns='{ED5}'/>".encode(), Session_Expires="1800")
    d.receive_request(first, 0.0)
    (peer,) = d.events()
    assert isinstance(peer, PeerRequest) and isinstance(peer.message, m.GetCSTAFeatures)
    d.answer_peer(first, m.GetCSTAFeaturesResponse())
    reply, established = d.events()
    assert isinstance(reply, SendResponse) and reply.status_code == 200 and reply.new_to_tag
    assert ("Accept", "application/csta+xml") in reply.headers
    assert b"ecma-323/csta/ed5" in reply.body
    assert isinstance(codec.decode(reply.body), m.GetCSTAFeaturesResponse)
    assert isinstance(established, Established) and established.request is first
    again = invite(b"", Session_Expires="1800")
    d.receive_request(invite(f"<GetCSTAFeatures xmlns='{ED5}'/>".encode()), 1.0)
    d.receive_request(again, 1.0)  # a second re-INVITE while the first waits
    _, overlap = d.events()
    assert isinstance(overlap, SendResponse) and overlap.status_code == 491
    update = invite(b"", Session_Expires="100")
    d.receive_request(Request(method="UPDATE", uri=update.uri, headers=update.headers), 1.0)
    (short,) = d.events()
    assert isinstance(short, SendResponse) and short.status_code == 422
    assert ("Min-SE", "120") in short.headers


def test_we_refresh_for_a_client_without_timer_and_bye_when_it_lapses() -> None:
    d = CstaDialog(role=Role.CLIENT_GATEWAY)
    d.receive_request(invite(b"", Session_Expires="100"), 0.0)
    d.events()
    due = d.get_timer()
    assert due is not None and due == 50.0
    d.handle_timer(due)
    (refresh,) = d.events()
    assert isinstance(refresh, SendRequest) and refresh.method == "INVITE" and not refresh.body
    assert ("Session-Expires", "100;refresher=uas") in refresh.headers
    d.receive_response(refresh.token, _response(refresh, 500), due + 1)
    (lost,) = d.events()
    assert isinstance(lost, Lost) and lost.send_bye


def test_a_client_that_does_not_refresh_gets_bye() -> None:
    d = CstaDialog(role=Role.CLIENT_GATEWAY)
    d.receive_request(invite(b"", Session_Expires="90", Supported="timer"), 0.0)
    d.events()
    due = d.get_timer()
    assert due is not None
    d.handle_timer(due)
    (lost,) = d.events()
    assert isinstance(lost, Lost) and lost.send_bye


def _response(sent: SendRequest, status: int):  # type: ignore[no-untyped-def]
    from uacsta.sip.message import Response

    return Response(status_code=status, reason="x", headers=())
