"""The outbox store on a real database of each engine (SQLite, PostgreSQL): endpoints,
enqueue, due, claims and leases, marks, recent, purge."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from uacsta.store.db import Store
from uacsta.store.outbox import DELIVERED, FAILED, PENDING, OutboxRow, OutboxStore


@pytest.fixture
def outbox(store_url: str) -> Iterator[OutboxStore]:
    store = Store(store_url)
    yield OutboxStore(store)
    store.close()


def row(n: int, endpoint: str, created: float) -> OutboxRow:
    return OutboxRow(
        id=f"00000000-0000-0000-0000-{n:012d}",
        endpoint_id=endpoint,
        event_type="call.missed",
        body=f'{{"n":{n}}}',
        created=created,
    )


def test_endpoint_crud(outbox: OutboxStore) -> None:
    e = outbox.add_endpoint(
        url="https://example.com/h", secret="s" * 20, events=["call.missed", "call.ended"]
    )
    assert e.lines is None and e.enabled and e.events == {"call.missed", "call.ended"}
    assert "s" * 20 not in repr(e)  # never the secret in logs
    assert outbox.list_endpoints() == [e]
    changed = outbox.update_endpoint(e.id, lines=["100", "sip:200@pbx"], enabled=False)
    assert changed is not None and changed.lines == {"100", "sip:200@pbx"} and not changed.enabled
    unchanged = outbox.update_endpoint(e.id, description="crm")
    assert unchanged is not None and unchanged.lines == {"100", "sip:200@pbx"}
    cleared = outbox.update_endpoint(e.id, lines=None)
    assert cleared is not None and cleared.lines is None and cleared.description == "crm"
    assert outbox.delete_endpoint(e.id)
    assert not outbox.delete_endpoint(e.id)
    assert outbox.get_endpoint(e.id) is None


def test_enqueue_due_marks_and_recent(outbox: OutboxStore) -> None:
    e = outbox.add_endpoint(url="http://h/", secret="x" * 16, events=["call.missed"])
    assert outbox.enqueue([row(n, e.id, 1000.0 + n) for n in range(5)]) == 5
    assert outbox.enqueue([]) == 0
    assert outbox.enqueue([row(4, e.id, 1004.0), row(5, e.id, 1005.0)]) == 1  # 4 is there
    due = outbox.due(1002.0, 10)
    assert [d.id[-1] for d in due] == ["0", "1", "2"]  # oldest first, only the due ones
    assert [d.body for d in outbox.due(2000.0, 2)] == ['{"n":0}', '{"n":1}']
    assert len(outbox.due(2000.0, 10, exclude=[due[0].id])) == 5
    assert outbox.next_due() == 1000.0
    assert outbox.next_due(exclude=[due[0].id]) == 1001.0

    outbox.mark_delivered(due[0].id, at=1500.0, status=204)
    outbox.mark_failed(due[1].id, next_attempt_at=1600.0, status=500, error="HTTP 500 X")
    outbox.mark_failed(due[2].id, next_attempt_at=None, status=None, error="x" * 400)
    first, second, third = (outbox.get(d.id) for d in due)
    assert first is not None and first.state == DELIVERED and first.attempts == 1
    assert first.delivered_at == 1500.0 and first.next_attempt_at is None
    assert second is not None and second.state == PENDING and second.attempts == 1
    assert second.next_attempt_at == 1600.0 and second.last_status == 500
    assert third is not None and third.state == FAILED and len(third.last_error or "") == 255
    assert [d.id for d in outbox.due(1599.0, 10)] == [row(n, "", 0).id for n in (3, 4, 5)]
    assert outbox.counts(e.id) == {PENDING: 4, DELIVERED: 1, FAILED: 1}
    assert [d.id[-1] for d in outbox.recent(e.id, 3)] == ["5", "4", "3"]


def test_purge_and_delete_take_finished_and_owned_rows(outbox: OutboxStore) -> None:
    a = outbox.add_endpoint(url="http://a/", secret="x" * 16, events=["call.missed"])
    b = outbox.add_endpoint(url="http://b/", secret="y" * 16, events=["call.missed"])
    outbox.enqueue([row(1, a.id, 100.0), row(2, a.id, 100.0), row(3, a.id, 900.0)])
    outbox.enqueue([row(4, b.id, 100.0)])
    outbox.mark_delivered(row(1, "", 0).id, at=101.0, status=200)
    outbox.mark_delivered(row(3, "", 0).id, at=901.0, status=200)
    assert outbox.purge(500.0) == 1  # delivered and old; pending and recent rows stay
    assert {d.id[-1] for d in outbox.recent(a.id)} == {"2", "3"}
    assert outbox.delete_endpoint(a.id)
    assert outbox.recent(a.id) == []
    assert [d.id[-1] for d in outbox.recent(b.id)] == ["4"]
