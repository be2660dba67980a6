"""The per-phone trace ring: the same entries, in the same order, as a bounded deque."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uacsta.phones import trace
from uacsta.phones.trace import TraceBuffer

ENTRY = st.tuples(
    st.sampled_from(["in", "out"]),
    st.sampled_from(["sip", "csta", "note"]),
    st.text(max_size=30),
)


@given(size=st.integers(min_value=0, max_value=8), added=st.lists(ENTRY, max_size=40))
def test_keeps_the_last_entries_oldest_first(size: int, added: list[tuple[str, str, str]]) -> None:
    buffer = TraceBuffer(size)
    model: deque[tuple[str, str, str]] = deque(maxlen=size)
    for direction, kind, text in added:
        buffer.add(direction, kind, text)
        model.append((direction, kind, text))
        assert [entry[1:] for entry in buffer.entries] == list(model)
    assert len(buffer) == len(model)


def test_times_are_kept_with_their_entries() -> None:
    buffer = TraceBuffer(2)
    for text in ("a", "b", "c"):
        buffer.add("in", "sip", text)
    (t1, *_, first), (t2, *_, second) = buffer.entries
    assert (first, second) == ("b", "c")
    assert t1 <= t2


def test_repeated_texts_are_shared() -> None:
    buffer = TraceBuffer(4)
    for _ in range(2):
        buffer.add("out", "sip", "".join(["INFO sip:", "100@192.0.2.1", " SIP/2.0"]))
    first, second = buffer.entries
    assert first[3] is second[3]


def test_an_unknown_entry_kind_is_kept_by_name() -> None:
    buffer = TraceBuffer(1)
    buffer.add("out", "fax", "page 1")
    assert buffer.entries[0][1:] == ("out", "fax", "page 1")


def test_negative_size_keeps_nothing() -> None:
    buffer = TraceBuffer(-1)
    buffer.add("in", "sip", "x")
    assert buffer.entries == []


def test_entry_kinds_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace, "_MAX_PAIRS", len(trace._PAIRS))
    with pytest.raises(ValueError, match="too many trace entry kinds"):
        TraceBuffer(1).add("in", "a-kind-never-seen", "x")


def test_full_text_is_kept_for_the_newest_entries_only() -> None:
    buffer = TraceBuffer(size=4, details=2)
    buffer.watch(60)
    for i in range(6):
        buffer.add("in", "sip", f"INFO {i}", f"INFO {i}\r\nCall-ID: x{i}\r\n\r\nbody")
    buffer.add("out", "csta", "NoBody")
    entries = buffer.full_entries()
    assert [e[3] for e in entries] == ["INFO 3", "INFO 4", "INFO 5", "NoBody"]
    assert [e[4] for e in entries] == [
        None,
        "INFO 4\r\nCall-ID: x4\r\n\r\nbody",
        "INFO 5\r\nCall-ID: x5\r\n\r\nbody",
        None,
    ]
    assert [e[:4] for e in entries] == buffer.entries


def test_no_full_text_without_room() -> None:
    assert not TraceBuffer(size=0).keeps_details
    assert not TraceBuffer(size=8, details=0).keeps_details
    buffer = TraceBuffer(size=8, details=0)
    buffer.watch(60)
    buffer.add("in", "sip", "INFO", "INFO\r\n")
    assert buffer.full_entries()[0][4] is None


def test_full_text_only_while_someone_watches(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(trace.time, "monotonic", lambda: clock[0])
    buffer = TraceBuffer(size=8, details=4)
    assert not buffer.keeps_details  # nobody looks: no text is made or kept
    buffer.add("in", "sip", "INFO 1", "INFO 1\r\n")
    buffer.watch(600)
    assert buffer.keeps_details
    buffer.add("in", "sip", "INFO 2", "INFO 2\r\n")
    clock[0] += 601
    assert not buffer.keeps_details
    buffer.add("in", "sip", "INFO 3", "INFO 3\r\n")
    assert [e[4] for e in buffer.full_entries()] == [None, "INFO 2\r\n", None]
