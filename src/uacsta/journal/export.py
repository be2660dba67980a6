"""The call journal for people: CSV rows (safe to open in a spreadsheet), outcome labels in
plain words, durations and times as a reader wants them."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from uacsta.switch.callrecord import CallRecord, Direction, Outcome

__all__ = [
    "CSV_COLUMNS",
    "csv_lines",
    "direction_label",
    "duration_text",
    "iso_time",
    "outcome_label",
    "safe_cell",
]

CSV_COLUMNS = (
    "id",
    "line",
    "phone",
    "call_id",
    "direction",
    "remote_number",
    "remote_name",
    "started",
    "answered",
    "ended",
    "ring_seconds",
    "talk_seconds",
    "outcome",
    "target",
    "cause",
    "related",
    "internal",
)

#: A cell a spreadsheet would read as a formula (OWASP "CSV injection"): =, +, -, @, and the
#: tab and carriage return some programs strip before looking.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """A CSV cell: ``None`` as empty, text that a spreadsheet would run prefixed with ``'``."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def iso_time(epoch: float | None) -> str:
    """Epoch seconds as ISO 8601 UTC with milliseconds (``2026-12-06T02:52:24.125+00:00``)."""
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def _row(record: CallRecord) -> list[str]:
    cells: list[object] = [
        record.id,
        record.line,
        record.phone,
        record.call_id,
        record.direction.value,
        record.remote_number,
        record.remote_name,
        iso_time(record.started),
        iso_time(record.answered),
        iso_time(record.ended),
        f"{record.ring_seconds:.3f}",
        f"{record.talk_seconds:.3f}",
        record.outcome.value,
        record.target,
        record.cause,
        " ".join(record.related),
        "true" if record.internal else "false",
    ]
    return [safe_cell(c) for c in cells]


def csv_lines(records: Iterable[CallRecord], *, header: bool = True) -> Iterator[str]:
    """The CSV text of ``records``, one line (CRLF-terminated, RFC 4180) per record."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(CSV_COLUMNS)
        yield buffer.getvalue()
    for record in records:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(_row(record))
        yield buffer.getvalue()


_OUTCOME_WORDS = {
    Outcome.ANSWERED: "Answered",
    Outcome.MISSED: "Missed",
    Outcome.BUSY: "Busy",
    Outcome.REJECTED: "Rejected",
    Outcome.CANCELLED: "Cancelled",
    Outcome.FORWARDED: "Forwarded",
    Outcome.DEFLECTED: "Deflected",
    Outcome.TRANSFERRED: "Transferred",
    Outcome.ANSWERED_ELSEWHERE: "Answered elsewhere",
    Outcome.UNANSWERED: "Not answered",
    Outcome.FAILED: "Failed",
    Outcome.LOST_WITH_PHONE: "Lost with the phone",
}


def outcome_words(outcome: Outcome) -> str:
    """The outcome alone in plain words (for a filter's choices)."""
    return _OUTCOME_WORDS[outcome]


def outcome_label(record: CallRecord) -> str:
    """The outcome in plain words with where the call went: "Forwarded to 200"."""
    words = _OUTCOME_WORDS[record.outcome]
    target = record.target
    if target and record.outcome in (
        Outcome.FORWARDED,
        Outcome.DEFLECTED,
        Outcome.TRANSFERRED,
    ):
        return f"{words} to {target}"
    if target and record.outcome is Outcome.ANSWERED_ELSEWHERE:
        return f"{words} (by {target})"
    if record.cause and record.outcome is Outcome.FAILED:
        return f"{words} ({record.cause})"
    return words


def direction_label(direction: Direction) -> str:
    return {
        Direction.INCOMING: "Incoming",
        Direction.OUTGOING: "Outgoing",
        Direction.INTERNAL: "Internal",
    }[direction]


def duration_text(seconds: float) -> str:
    """A duration as people read it: ``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"
