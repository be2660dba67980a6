"""Several nodes on one database: two webhook services (each its own store and sender ID, as
two uacsta processes) share one outbox and deliver to a real receiver; every delivery arrives
exactly once. On each engine (PostgreSQL: nodes sharing the server; SQLite: processes
sharing a file)."""

from __future__ import annotations

from collections import Counter

from tests.journal.receiver import Receiver, wait_until
from uacsta.config import WebhookSettings
from uacsta.journal.webhooks import WebhookService
from uacsta.store.db import Store
from uacsta.store.outbox import DELIVERED, FAILED, PENDING, OutboxStore
from uacsta.switch.callrecord import CallNotice, NoticeType

SECRET = "whsec-nodes-secret-0123456789"
#: Few attempts in flight per node, so both nodes are busy until the outbox is empty.
SETTINGS = WebhookSettings(timeout=5.0, max_concurrency=4, max_per_endpoint=4)
EVENTS = 200


def notice(n: int) -> CallNotice:
    return CallNotice(
        type=NoticeType.CALL_MISSED, at=1_796_119_200.0 + n, line="sip:100@pbx", call_id=f"c{n}"
    )


async def test_two_nodes_deliver_every_event_exactly_once(store_url: str) -> None:
    receiver = await Receiver(secret=SECRET).start()
    stores = [Store(store_url), Store(store_url)]
    nodes = [
        WebhookService(OutboxStore(store), SETTINGS, sender=f"node-{name}")
        for store, name in zip(stores, "ab", strict=True)
    ]
    try:
        for node in nodes:
            await node.start()
        endpoint = await nodes[0].add_endpoint(
            url=receiver.url, events=["call.missed"], secret=SECRET
        )
        await nodes[1].reload()
        for n in range(EVENTS):  # both nodes publish (each wakes its own sender)
            assert nodes[n % 2].publish(notice(n)) == 1
        outbox = nodes[0].outbox
        await wait_until(
            lambda: (
                outbox.counts(endpoint.id) == {PENDING: 0, DELIVERED: EVENTS, FAILED: 0}
                # A node counts a delivery once its mark is written (a moment after the row).
                and sum(node.stats.delivered for node in nodes) == EVENTS
            ),
            timeout=30,
            what=f"{EVENTS} deliveries",
        )
        arrived = Counter(r.delivery for r in receiver.requests)
        assert len(arrived) == EVENTS and set(arrived.values()) == {1}  # each once, none twice
        assert all(r.valid for r in receiver.requests)
        assert {d.id for d in outbox.recent(endpoint.id, 1000)} == set(arrived)
        # Both nodes sent (the outbox is shared, not split by who queued).
        assert all(node.stats.delivered > 0 for node in nodes), [
            node.stats.delivered for node in nodes
        ]
    finally:
        for node in nodes:
            await node.stop()
        for store in stores:
            store.close()
        await receiver.stop()
