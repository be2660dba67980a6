"""Benchmark of the uacsta.csta codec against plain ElementTree parsing of the same bytes.

Run: ``.venv/bin/python benchmarks/csta_codec.py``. Writes ``benchmarks/results/csta_codec.json``
and ``.md``. Figures are µs per message, best of several repeats (time.perf_counter).
"""

from __future__ import annotations

import json
import pathlib
import platform
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable

from uacsta.csta.codec import Edition, decode, encode

ROOT = pathlib.Path(__file__).resolve().parent
RESULTS = ROOT / "results"
NS = "http://www.ecma-international.org/standards/ecma-323/csta/ed5"

MAKE_CALL = f"""<?xml version="1.0" encoding="UTF-8"?>
<MakeCall xmlns="{NS}">
  <callingDevice>sip:455455@ser.intern.snom.de</callingDevice>
  <calledDirectoryNumber>455360</calledDirectoryNumber>
  <autoOriginate>doNotPrompt</autoOriginate>
</MakeCall>""".encode()

DELIVERED = f"""<?xml version="1.0" encoding="UTF-8"?>
<DeliveredEvent xmlns="{NS}">
  <monitorCrossRefID>43</monitorCrossRefID>
  <connection><callID>7</callID><deviceID>sip:455455@pbx.example.com</deviceID></connection>
  <alertingDevice><deviceIdentifier>sip:455455@pbx.example.com</deviceIdentifier></alertingDevice>
  <callingDevice><deviceIdentifier>sip:200@pbx.example.com</deviceIdentifier></callingDevice>
  <calledDevice><deviceIdentifier>sip:455455@pbx.example.com</deviceIdentifier></calledDevice>
  <lastRedirectionDevice><notKnown/></lastRedirectionDevice>
  <localConnectionInfo>alerting</localConnectionInfo>
  <cause>newCall</cause>
</DeliveredEvent>""".encode()

_INFO = """<snapshotDeviceResponseInfo>
    <connectionIdentifier><callID>{n}</callID><deviceID>sip:455455@pbx.example.com</deviceID></connectionIdentifier>
    <localCallState><compoundCallState><localConnectionState>{state}</localConnectionState></compoundCallState></localCallState>
  </snapshotDeviceResponseInfo>"""
SNAPSHOT = (
    f'<?xml version="1.0" encoding="UTF-8"?>\n<SnapshotDeviceResponse xmlns="{NS}">'
    "<crossRefIDorSnapshotData><snapshotData>"
    + "".join(
        _INFO.format(n=n, state=s)
        for n, s in enumerate(["connected", "hold", "alerting", "hold"], start=1)
    )
    + "</snapshotData></crossRefIDorSnapshotData></SnapshotDeviceResponse>"
).encode()

SAMPLES = {
    "MakeCall": MAKE_CALL,
    "DeliveredEvent": DELIVERED,
    "SnapshotDeviceResponse (4 calls)": SNAPSHOT,
}


def best_us(fn: Callable[[], object], number: int, repeat: int = 7) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / number * 1e6


def main() -> int:
    number = 2000
    rows = []
    for name, data in SAMPLES.items():
        message = decode(data)
        assert decode(encode(message, Edition.ED5)) == message
        baseline = best_us(lambda d=data: ET.fromstring(d), number)
        dec = best_us(lambda d=data: decode(d), number)
        enc = best_us(lambda m=message: encode(m, Edition.ED5), number)
        rows.append(
            {
                "message": name,
                "bytes": len(data),
                "etree_fromstring_us": round(baseline, 2),
                "decode_us": round(dec, 2),
                "encode_us": round(enc, 2),
                "decode_vs_etree": round(dec / baseline, 2),
                "encode_vs_etree": round(enc / baseline, 2),
            }
        )
    result = {
        "benchmark": "csta_codec",
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "method": f"best of 7 repeats x {number} iterations, time.perf_counter",
        "results": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "csta_codec.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# CSTA codec benchmark",
        "",
        f"Python {result['python']} on {result['platform']}; {result['method']}.",
        "Baseline: `xml.etree.ElementTree.fromstring` of the same bytes (parse only).",
        "",
        "| message | bytes | ET.fromstring µs | decode µs | encode µs | decode/ET | encode/ET |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['message']} | {r['bytes']} | {r['etree_fromstring_us']} | {r['decode_us']} "
        f"| {r['encode_us']} | {r['decode_vs_etree']} | {r['encode_vs_etree']} |"
        for r in rows
    ]
    (RESULTS / "csta_codec.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
