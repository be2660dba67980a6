"""SIP message parse and serialize: microseconds per message, best of several repeats.

Run: ``.venv/bin/python benchmarks/sip_parse.py``. Writes ``benchmarks/results/sip_parse.json``
and ``.md`` next to this file. Typical uacsta traffic: a phone's REGISTER, an INVITE with SDP,
and an INFO carrying ~1 KB of CSTA XML.
"""

from __future__ import annotations

import json
import pathlib
import platform
import sys
import time

from uacsta.sip.message import parse_message

REPEATS = 7
TARGET_SECONDS_PER_REPEAT = 0.08

HEAD = "Via: SIP/2.0/{t} 192.0.2.10:5060;branch=z9hG4bK{b};rport\r\n"


def _crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


REGISTER = _crlf(
    """REGISTER sip:pbx.example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1f9a3c7e21;rport
Max-Forwards: 70
From: "Alice Liddell" <sip:1001@pbx.example.com>;tag=a73kszlfl
To: "Alice Liddell" <sip:1001@pbx.example.com>
Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.10
CSeq: 42 REGISTER
Contact: <sip:1001@192.0.2.10:5060;transport=udp>;reg-id=1;<INSTANCE>
Expires: 3600
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, OPTIONS, INFO, SUBSCRIBE, UPDATE, MESSAGE
Supported: path, gruu, outbound
User-Agent: Yealink SIP-T54W 96.86.0.70
Content-Length: 0

""".replace("<INSTANCE>", '+sip.instance="<urn:uuid:00000000-0000-1000-8000-0015657a1b2c>"')
)

SDP = _crlf(
    """v=0
o=- 20518 0 IN IP4 192.0.2.10
s=SDP data
c=IN IP4 192.0.2.10
t=0 0
m=audio 11780 RTP/AVP 8 0 9 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:9 G722/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv
"""
)

INVITE = (
    _crlf(
        """INVITE sip:1002@pbx.example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK3c9f0a55d2;rport
Max-Forwards: 70
From: "Alice Liddell" <sip:1001@pbx.example.com>;tag=8ak3mz0pq
To: <sip:1002@pbx.example.com>
Call-ID: 7m3NvQ2wZp9xk1f0@192.0.2.10
CSeq: 1 INVITE
Contact: <sip:1001@192.0.2.10:5060;transport=udp>
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, OPTIONS, INFO, SUBSCRIBE, UPDATE, MESSAGE
Supported: timer, replaces, 100rel
Session-Expires: 1800;refresher=uac
Min-SE: 90
User-Agent: Yealink SIP-T54W 96.86.0.70
Content-Type: application/sdp
"""
    )
    + f"Content-Length: {len(SDP)}\r\n\r\n".encode()
    + SDP
)

CSTA = (
    b'<?xml version="1.0" encoding="UTF-8"?>\r\n'
    b'<DeliveredEvent xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed5">'
    b"<monitorCrossRefID>1001</monitorCrossRefID>"
    b"<connection><callID>FF000100000000004C9A2B5E</callID><deviceID>1001</deviceID>"
    b"</connection>"
    b"<alertingDevice><deviceIdentifier>1001</deviceIdentifier></alertingDevice>"
    b"<callingDevice><deviceIdentifier>sip:1002@pbx.example.com</deviceIdentifier>"
    b"</callingDevice>"
    b"<calledDevice><deviceIdentifier>sip:1001@pbx.example.com</deviceIdentifier>"
    b"</calledDevice>"
    b"<lastRedirectionDevice><notRequired/></lastRedirectionDevice>"
    b"<localConnectionInfo>alerting</localConnectionInfo>"
    b"<cause>newCall</cause>"
    b"<networkCallingDevice><deviceIdentifier>+493012345678</deviceIdentifier>"
    b"</networkCallingDevice>"
    b"<networkCalledDevice><deviceIdentifier>+493012340001</deviceIdentifier>"
    b"</networkCalledDevice>"
    b"<associatedCallingDevice><deviceIdentifier>trunk-01</deviceIdentifier>"
    b"</associatedCallingDevice>"
    b"<extensions><privateData><private><callerName>Bob Example</callerName>"
    b"<lineKey>1</lineKey><ringTone>Ring3.wav</ringTone><priority>normal</priority>"
    b"<displayText>Incoming call from Bob Example (+493012345678)</displayText>"
    b"</private></privateData></extensions>"
    b"</DeliveredEvent>\r\n"
)

INFO = (
    _crlf(
        """INFO sip:1001@192.0.2.10:5060;transport=udp SIP/2.0
Via: SIP/2.0/UDP 198.51.100.5:5060;branch=z9hG4bK5d1e8b77a4;rport
Max-Forwards: 70
From: <sip:uacsta@198.51.100.5>;tag=c5ta91kq
To: "Alice Liddell" <sip:1001@pbx.example.com>;tag=8ak3mz0pq
Call-ID: csta-7f3a91c2d4e5@198.51.100.5
CSeq: 17 INFO
Contact: <sip:uacsta@198.51.100.5:5060>
Content-Disposition: signal;handling=required
Content-Type: application/csta+xml
"""
    )
    + f"Content-Length: {len(CSTA)}\r\n\r\n".encode()
    + CSTA
)

SAMPLES = {"REGISTER": REGISTER, "INVITE": INVITE, "INFO": INFO}


def best_us(fn: object, arg: object) -> float:
    """Best-of-REPEATS mean time of one call, in microseconds."""
    assert callable(fn)
    loops = 1
    while True:  # calibrate so one repeat takes about TARGET_SECONDS_PER_REPEAT
        start = time.perf_counter()
        for _ in range(loops):
            fn(arg)
        elapsed = time.perf_counter() - start
        if elapsed >= TARGET_SECONDS_PER_REPEAT / 4:
            break
        loops *= 4
    loops = max(1, int(loops * TARGET_SECONDS_PER_REPEAT / elapsed))
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(loops):
            fn(arg)
        best = min(best, (time.perf_counter() - start) / loops)
    return best * 1e6


def main() -> None:
    results = []
    for name, data in SAMPLES.items():
        msg = parse_message(data)
        assert parse_message(msg.to_bytes()) == msg
        parse = best_us(parse_message, data)
        serialize = best_us(lambda m: m.to_bytes(), msg)
        results.append(
            {
                "message": name,
                "bytes": len(data),
                "body_bytes": len(msg.body),
                "headers": len(msg.headers),
                "parse_us": round(parse, 2),
                "serialize_us": round(serialize, 2),
                "round_trip_us": round(parse + serialize, 2),
            }
        )
    meta = {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "method": f"best of {REPEATS} repeats of ~{TARGET_SECONDS_PER_REPEAT}s, time.perf_counter",
    }
    out_dir = pathlib.Path(__file__).resolve().parent / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "sip_parse.json").write_text(
        json.dumps({"benchmark": "sip_parse", **meta, "results": results}, indent=2) + "\n"
    )
    lines = [
        "# SIP parse / serialize",
        "",
        f"Python {meta['python']} ({meta['implementation']}, {meta['machine']}); "
        f"{meta['method']}. Microseconds per message.",
        "",
        "| message | bytes | body | headers | parse µs | serialize µs | round trip µs |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['message']} | {r['bytes']} | {r['body_bytes']} | {r['headers']} "
            f"| {r['parse_us']} | {r['serialize_us']} | {r['round_trip_us']} |"
        )
    (out_dir / "sip_parse.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
