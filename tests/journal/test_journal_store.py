"""JournalStore on SQLite: rows round-trip, idempotent adds, filters, keyset pages, purge;
the CSV export's escaping and the plain-words labels."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.journal.conftest import T0, record
from uacsta.journal.export import csv_lines, duration_text, outcome_label, safe_cell
from uacsta.store.db import Store
from uacsta.store.journal import JournalStore, decode_cursor, encode_cursor
from uacsta.switch.callrecord import CallRecord, Direction, Outcome


def test_the_table_and_its_indexes_exist(store: Store) -> None:
    inspector = sa.inspect(store.engine)
    assert inspector.has_table("call_journal")
    indexed = {tuple(ix["column_names"]) for ix in inspector.get_indexes("call_journal")}
    assert {("line", "started"), ("started",), ("outcome",)} <= indexed


def test_a_record_round_trips_with_every_field(journal: JournalStore) -> None:
    full = record(
        1,
        remote_name="Ada Lovelace",
        outcome=Outcome.TRANSFERRED,
        target="sip:300@pbx.example",
        cause="normalClearing",
        related=("c7", "c8"),
    )
    missed = record(2, answered=None, outcome=Outcome.MISSED, remote_number=None)
    assert journal.add([full, missed]) == 2
    rows, after = journal.query()
    assert rows == [missed, full]
    assert after is None
    assert rows[1].to_json()["talk_seconds"] == 30.0
    assert rows[0].talk_seconds == 0.0 and rows[0].ring_seconds == 35.0


def test_adding_a_record_twice_keeps_one_row(journal: JournalStore) -> None:
    first = record(1)
    assert journal.add([first, first]) == 1
    assert journal.add([first, record(2)]) == 1
    assert journal.add([]) == 0
    assert journal.count() == 2
    # The first write stands (a record is final once written).
    journal.add([record(1, outcome=Outcome.MISSED)])
    rows, _ = journal.query(outcome=Outcome.ANSWERED)
    assert [r.id for r in rows] == ["rec-0002", "rec-0001"]


@pytest.fixture
def filled(journal: JournalStore) -> JournalStore:
    journal.add(
        [
            record(1),
            record(2, answered=None, outcome=Outcome.MISSED, remote_number="+4930123456"),
            record(3, line="sip:200@pbx.example", direction=Direction.OUTGOING),
            record(4, line="tel:+4930200", direction=Direction.INTERNAL, remote_number="100"),
            record(5, outcome=Outcome.FORWARDED, target="300", remote_number="50%_x"),
            record(6, line="sip:100@other.example", outcome=Outcome.BUSY),
        ]
    )
    return journal


def ids(rows: list[CallRecord]) -> list[int]:
    return [int(r.id.removeprefix("rec-")) for r in rows]


def test_filters(filled: JournalStore) -> None:
    q = filled.query
    assert ids(q()[0]) == [6, 5, 4, 3, 2, 1]
    assert ids(q(line="sip:100@pbx.example")[0]) == [5, 2, 1]
    assert ids(q(lines=["sip:200@pbx.example", "tel:+4930200"])[0]) == [4, 3]
    # Extensions: every line whose user part / number is that.
    assert ids(q(extensions=["100"])[0]) == [6, 5, 2, 1]
    assert ids(q(extensions=["+4930200"])[0]) == [4]
    assert ids(q(lines=["sip:200@pbx.example"], extensions=["100"])[0]) == [6, 5, 3, 2, 1]
    assert q(lines=[], extensions=[])[0] == []  # given but empty: nothing, never everything
    assert ids(q(outcome=Outcome.MISSED)[0]) == [2]
    assert ids(q(outcome="busy")[0]) == [6]
    assert ids(q(direction=Direction.OUTGOING)[0]) == [3]
    assert ids(q(direction="internal")[0]) == [4]
    assert ids(q(since=T0 + 120, until=T0 + 240)[0]) == [3, 2]  # since <= started < until
    assert ids(q(remote="3012")[0]) == [2]
    # LIKE wildcards in the text are plain characters.
    assert ids(q(remote="%_")[0]) == [5]
    assert q(remote="_x_")[0] == []
    assert ids(q(remote="20")[0]) == [6, 3, 1]
    assert ids(q(extensions=["100"], outcome=Outcome.ANSWERED, since=T0)[0]) == [1]


def test_paging_with_cursors_walks_every_row_once(journal: JournalStore) -> None:
    # Several calls in the same second: the ID breaks the tie.
    records = [
        record(n, started=T0 + 60 * (n // 3), answered=None, ended=T0 + 60 * (n // 3) + 9)
        for n in range(20)
    ]
    journal.add(records)
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        rows, after = journal.query(limit=7, before=after)
        pages += 1
        seen += [r.id for r in rows]
        if after is None:
            break
        assert len(rows) == 7
    assert pages == 3
    expected = sorted(records, key=lambda r: (r.started, r.id), reverse=True)
    assert seen == [r.id for r in expected]
    # A row written after the first page never shifts the next page.
    first, cursor = journal.query(limit=5)
    journal.add([record(99, started=T0 + 10_000, ended=T0 + 10_001)])
    second, _ = journal.query(limit=5, before=cursor)
    assert [r.id for r in second] == [r.id for r in expected[5:10]]
    assert first[0].id == expected[0].id


def test_an_exact_page_ends_without_a_cursor(journal: JournalStore) -> None:
    journal.add([record(n) for n in range(4)])
    rows, after = journal.query(limit=4)
    assert len(rows) == 4 and after is None


def test_cursor_text_round_trips_and_refuses_garbage() -> None:
    cursor = (T0 + 0.1 + 0.2, "rec-é/0001")
    assert decode_cursor(encode_cursor(cursor)) == cursor
    for bad in ("", "!!!", encode_cursor((T0, "x"))[:-3] + "zz", "WzEsMl0"):  # [1,2]
        with pytest.raises(ValueError):
            decode_cursor(bad)


def test_purge_deletes_calls_started_before(filled: JournalStore) -> None:
    assert filled.purge(T0 + 60 * 3) == 2
    assert filled.count() == 4
    assert ids(filled.query()[0]) == [6, 5, 4, 3]
    assert filled.purge(T0) == 0


def test_the_table_is_created_in_an_existing_database(tmp_path: Path) -> None:
    """A database from before the journal gets the table at open (create_all)."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = Store(url)
    with old.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE call_journal"))
    old.close()
    again = Store(url)
    try:
        assert JournalStore(again).add([record(1)]) == 1
    finally:
        again.close()


# --- CSV and labels ----------------------------------------------------------------------------


def test_csv_cells_that_a_spreadsheet_would_run_are_defused() -> None:
    for text in ("=1+2", "+4930123", "-2", "@SUM(A1)", "\tx", "\r=x"):
        assert safe_cell(text) == "'" + text
    assert safe_cell("100") == "100"
    assert safe_cell(None) == ""
    assert safe_cell("a=b") == "a=b"


def test_csv_export_has_a_header_iso_times_and_quotes() -> None:
    rec = record(
        1,
        remote_number='=HYPERLINK("http://evil")',
        remote_name='Müller, "Hans"\nline two',
        related=("c2", "c3"),
        outcome=Outcome.DEFLECTED,
        target="-200",
    )
    text = "".join(csv_lines([rec]))
    assert text.endswith("\r\n")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:3] == ["id", "line", "phone"]
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["remote_number"] == '\'=HYPERLINK("http://evil")'
    assert row["remote_name"] == 'Müller, "Hans"\nline two'
    assert row["started"] == "2026-12-01T10:01:00.000+00:00"
    assert row["answered"] == "2026-12-01T10:01:05.000+00:00"
    assert row["talk_seconds"] == "30.000"
    assert row["target"] == "'-200"
    assert row["related"] == "c2 c3"
    assert row["outcome"] == "deflected"
    assert row["internal"] == "false"
    again_record = record(2, answered=None, internal=True)
    (again,) = csv.reader(io.StringIO("".join(csv_lines([again_record], header=False))))
    assert again[rows[0].index("answered")] == ""
    assert again[rows[0].index("internal")] == "true"  # the other party was one of our lines


def test_outcome_labels_and_durations_in_plain_words() -> None:
    assert outcome_label(record(1, outcome=Outcome.MISSED)) == "Missed"
    assert outcome_label(record(1, outcome=Outcome.FORWARDED, target="200")) == "Forwarded to 200"
    assert outcome_label(record(1, outcome=Outcome.TRANSFERRED, target="300")) == (
        "Transferred to 300"
    )
    assert outcome_label(record(1, outcome=Outcome.ANSWERED_ELSEWHERE, target="201")) == (
        "Answered elsewhere (by 201)"
    )
    assert outcome_label(record(1, outcome=Outcome.LOST_WITH_PHONE)) == "Lost with the phone"
    assert outcome_label(record(1, outcome=Outcome.FAILED, cause="networkCongestion")) == (
        "Failed (networkCongestion)"
    )
    assert [duration_text(s) for s in (0, 42.4, 65, 3725)] == [
        "0 s",
        "42 s",
        "1 min 05 s",
        "1 h 02 min",
    ]
