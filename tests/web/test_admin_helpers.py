"""The admin pages' helpers: settings errors in the page's words, vendor names, the trace file."""

from __future__ import annotations

from uacsta.operations import trace_entry
from uacsta.phones.vendors import vendor_name
from uacsta.store.db import PhoneRecord
from uacsta.web.admin.phones import trace_text
from uacsta.web.admin.settings import field_error


def test_a_settings_error_names_the_fields_label_and_keeps_the_key() -> None:
    name, message = field_error(
        "phones.registration_expires", "phones.registration_expires: must be at least 30 seconds"
    )
    assert name == "registration_expires"
    assert message == (
        "SIP expiration time: must be at least 30 seconds (phones.registration_expires)"
    )
    name, message = field_error("phones.passwords.001565AABBCC", "must not be empty")
    assert name == "phone_password" and message.startswith("Password for this phone: ")
    # A key no field shows: the message as it was, at the top of the section.
    assert field_error("log.level", "log.level: bad") == (None, "log.level: bad")


def test_vendor_names_are_the_profiles() -> None:
    assert [vendor_name(k) for k in ("yealink", "snom", "mitel", "auerswald", "fanvil")] == [
        "Yealink",
        "snom",
        "Mitel",
        "Auerswald",
        "Fanvil",
    ]
    assert vendor_name("SNOM") == "snom"
    assert vendor_name("acme") == "acme" and vendor_name(None) == ""


def test_the_trace_file_has_every_message_in_full_where_kept() -> None:
    record = PhoneRecord(mac="000413AABBCC", vendor="snom")
    entries = [
        trace_entry(1.7e9, "out", "sip", "INFO sip:x SIP/2.0", "INFO sip:x SIP/2.0\r\nA: b"),
        trace_entry(1_700_000_001.5, "in", "csta", "DeliveredEvent", None),
    ]
    text = trace_text(record, entries)
    assert text.startswith("uacsta message trace of 00:04:13:AA:BB:CC (snom)")
    assert "uacsta -> phone SIP INFO sip:x SIP/2.0\nINFO sip:x SIP/2.0\nA: b\n" in text
    assert "phone -> uacsta CSTA DeliveredEvent\n(full text no longer kept)" in text
