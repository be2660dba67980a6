"""Per-vendor ways of writing, where a vendor's documents differ from what the codec writes."""

from __future__ import annotations

from uacsta.simulator.personality import PERSONALITIES, single_quoted


def test_snom_writes_single_quoted_attributes_in_ed5() -> None:
    snom = PERSONALITIES["snom"]
    assert snom.single_quoted_attributes and snom.reply_edition_fixed is not None
    written = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<MonitorStartResponse xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed5">'
        b'<monitorCrossRefID>a="b"</monitorCrossRefID></MonitorStartResponse>'
    )
    assert single_quoted(written) == (
        b"<?xml version='1.0' encoding='UTF-8'?>"
        b"<MonitorStartResponse xmlns='http://www.ecma-international.org/standards/ecma-323/csta/ed5'>"
        b'<monitorCrossRefID>a="b"</monitorCrossRefID></MonitorStartResponse>'
    )
    assert single_quoted(b"<AnswerCallResponse/>") == b"<AnswerCallResponse/>"


def test_only_the_yealink_has_its_own_firmware_model() -> None:
    assert [k for k, p in PERSONALITIES.items() if p.firmware] == ["yealink"]
