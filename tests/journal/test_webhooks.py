"""Webhooks: signature, payload, back-off, matching (units); delivery to a real HTTP receiver
(retries, a receiver down then up, redirects, giving up); durability across restarts, in
process and with the real server as a subprocess killed by SIGTERM and SIGKILL."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.journal.receiver import Receiver, free_port, verify, wait_until
from uacsta import __version__
from uacsta.config import WebhookSettings
from uacsta.journal.webhooks import (
    EVENT_TYPES,
    TEST_EVENT,
    WebhookError,
    WebhookService,
    backoff_delay,
    build_payload,
    endpoint_matches,
    new_secret,
    sign,
    signature_headers,
    validate_url,
)
from uacsta.store.db import Store
from uacsta.store.outbox import DELIVERED, FAILED, PENDING, Endpoint, OutboxStore
from uacsta.switch.callrecord import CallNotice, CallRecord, Direction, NoticeType, Outcome

SECRET = "whsec-test-secret-0123456789"
FAST = WebhookSettings(timeout=2.0, retry_initial=0.05, retry_max=0.2)


# --- units ------------------------------------------------------------------------------------


def test_signature_matches_an_independent_implementation() -> None:
    body = b'{"id":"x"}'
    # openssl: printf '1700000000.{"id":"x"}' | openssl dgst -sha256 -hmac "$SECRET"
    vector = "c7f827070dc358a00d22278fc34651fa8d4bc2f4af75524e97b017f88dde477d"
    assert sign(SECRET, 1700000000, body) == "v1=" + vector
    # The documented rule, written out here: HMAC-SHA256(secret, "<timestamp>." + body).
    expected = hmac.new(SECRET.encode(), b"1700000001." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1700000001, body) == f"v1={expected}"
    assert sign(SECRET, 1700000001, body + b" ") != f"v1={expected}"
    assert sign(SECRET + "x", 1700000001, body) != f"v1={expected}"


def test_headers_of_an_attempt() -> None:
    headers = signature_headers(
        secret=SECRET, delivery_id="d-1", event_type="call.missed", body=b"{}", timestamp=17
    )
    assert headers == {
        "Content-Type": "application/json",
        "User-Agent": f"uacsta/{__version__}",
        "X-Uacsta-Event": "call.missed",
        "X-Uacsta-Delivery": "d-1",
        "X-Uacsta-Timestamp": "17",
        "X-Uacsta-Signature": sign(SECRET, 17, b"{}"),
    }


def test_secrets_are_random_and_long() -> None:
    a, b = new_secret(), new_secret()
    assert a != b and len(a) >= 43


def notice(
    kind: NoticeType = NoticeType.CALL_MISSED, line: str | None = "sip:100@pbx"
) -> CallNotice:
    record = CallRecord(
        id="rec-1",
        line=line or "sip:100@pbx",
        phone="001565000001",
        call_id="c1",
        direction=Direction.INCOMING,
        remote_number="200",
        started=1000.0,
        ended=1010.0,
        outcome=Outcome.MISSED,
    )
    return CallNotice(
        type=kind,
        at=1010.0,
        line=line,
        phone="001565000001",
        call_id="c1",
        direction=Direction.INCOMING,
        remote_number="200",
        record=record if kind is NoticeType.CALL_MISSED else None,
    )


def test_payload_shape() -> None:
    n = notice()
    body = build_payload(
        delivery_id="d-1",
        event_id="e-1",
        event_type="call.missed",
        created=1765000000.25,
        data=n.to_json(),
    )
    payload = json.loads(body)
    assert payload == {
        "id": "d-1",
        "event_id": "e-1",
        "type": "call.missed",
        "created": "2025-12-06T05:46:40.250+00:00",
        "data": n.to_json(),
    }
    assert datetime.fromisoformat(payload["created"]).utcoffset() is not None
    assert payload["data"]["call"]["outcome"] == "missed"


def test_backoff_schedule() -> None:
    middle = [backoff_delay(n, initial=5, maximum=3600, rand=lambda: 0.5) for n in range(1, 12)]
    assert middle == [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600]
    assert backoff_delay(200, initial=5, maximum=3600, rand=lambda: 0.5) == 3600
    assert backoff_delay(1, initial=5, maximum=3600, rand=lambda: 0.0) == pytest.approx(4.0)
    assert backoff_delay(1, initial=5, maximum=3600, rand=lambda: 0.999) < 6.0


def endpoint(events: set[str], lines: set[str] | None = None, enabled: bool = True) -> Endpoint:
    return Endpoint(
        id="e",
        url="http://x/",
        secret=SECRET,
        events=frozenset(events),
        lines=frozenset(lines) if lines is not None else None,
        enabled=enabled,
    )


def test_endpoint_matching() -> None:
    missed = notice()
    assert endpoint({"call.missed"}).events <= set(EVENT_TYPES)
    assert endpoint_matches(endpoint({"call.missed"}), missed)
    assert not endpoint_matches(endpoint({"call.ended"}), missed)
    assert not endpoint_matches(endpoint({"call.missed"}, enabled=False), missed)
    assert endpoint_matches(endpoint({"call.missed"}, {"sip:100@pbx"}), missed)
    assert endpoint_matches(endpoint({"call.missed"}, {"100"}), missed)  # by extension
    assert not endpoint_matches(endpoint({"call.missed"}, {"101", "sip:10@pbx"}), missed)
    online = notice(NoticeType.PHONE_ONLINE, line=None)
    assert endpoint_matches(endpoint({"phone.online"}), online)
    assert not endpoint_matches(endpoint({"phone.online"}, {"100"}), online)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://h/x",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "http://",
        "http://u:p@h/",
        "",
        "http://h/a b",
        "http://h:99999/",
    ],
)
def test_url_validation_refuses(url: str) -> None:
    with pytest.raises(WebhookError):
        validate_url(url)


def test_url_validation_accepts() -> None:
    assert validate_url(" https://crm.example.com:8443/hook?x=1 ") == (
        "https://crm.example.com:8443/hook?x=1"
    )
    assert validate_url("http://[::1]:9000/") == "http://[::1]:9000/"


# --- the service against a real receiver -----------------------------------------------------


@pytest.fixture
def db_url(store_url: str) -> str:
    """A fresh database of each engine (SQLite, PostgreSQL)."""
    return store_url


@pytest.fixture
async def outbox(db_url: str) -> AsyncIterator[OutboxStore]:
    store = Store(db_url)
    yield OutboxStore(store)
    store.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver(secret=SECRET)
    yield r
    await r.stop()


async def start_service(outbox: OutboxStore, settings: WebhookSettings = FAST) -> WebhookService:
    service = WebhookService(outbox, settings)
    await service.start()
    return service


def states(outbox: OutboxStore, endpoint_id: str) -> dict[str, str]:
    return {d.id: d.state for d in outbox.recent(endpoint_id, 1000)}


async def test_delivery_is_signed_and_marked(outbox: OutboxStore, receiver: Receiver) -> None:
    await receiver.start()
    service = await start_service(outbox)
    try:
        e = await service.add_endpoint(
            url=receiver.url, events=["call.missed"], secret=SECRET, lines=["100"]
        )
        assert service.publish(notice(NoticeType.CALL_ENDED)) == 0  # not subscribed
        assert service.publish(notice(line="sip:101@pbx")) == 0  # another line
        assert service.publish(notice()) == 1
        await wait_until(lambda: len(receiver.requests) == 1, what="the delivery")
        got = receiver.requests[0]
        assert got.method == "POST" and got.path == "/hook" and got.valid
        assert got.headers["content-type"] == "application/json"
        assert got.headers["x-uacsta-event"] == "call.missed"
        assert got.headers["user-agent"] == f"uacsta/{__version__}"
        assert got.json["id"] == got.delivery and got.json["type"] == "call.missed"
        assert got.json["data"] == notice().to_json()
        await wait_until(lambda: states(outbox, e.id) == {got.delivery: DELIVERED}, what="mark")
        row = outbox.get(got.delivery)
        assert row is not None and row.attempts == 1 and row.last_status == 200
        assert row.body.encode() == got.body  # stored exactly as sent
    finally:
        await service.stop()


async def test_each_endpoint_gets_its_own_delivery_id(
    outbox: OutboxStore, receiver: Receiver
) -> None:
    await receiver.start()
    service = await start_service(outbox)
    try:
        for _ in range(2):
            await service.add_endpoint(url=receiver.url, events=["call.missed"], secret=SECRET)
        assert service.publish(notice()) == 2
        await wait_until(lambda: len(receiver.requests) == 2, what="two deliveries")
        first, second = (r.json for r in receiver.requests)
        assert first["id"] != second["id"] and first["event_id"] == second["event_id"]
    finally:
        await service.stop()


async def test_retry_after_server_errors_keeps_id_and_body(
    outbox: OutboxStore, receiver: Receiver
) -> None:
    receiver.answer = lambda n: 500 if n < 2 else 204
    await receiver.start()
    service = await start_service(outbox)
    try:
        e = await service.add_endpoint(url=receiver.url, events=["call.missed"], secret=SECRET)
        service.publish(notice())
        await wait_until(lambda: receiver.deliveries(204) != [], what="the third attempt")
        assert [r.status for r in receiver.requests] == [500, 500, 204]
        assert len({r.delivery for r in receiver.requests}) == 1
        assert len({r.body for r in receiver.requests}) == 1
        assert all(r.valid for r in receiver.requests)
        await wait_until(lambda: DELIVERED in states(outbox, e.id).values(), what="mark")
        row = outbox.get(receiver.requests[0].delivery)
        assert row is not None and row.attempts == 3 and row.last_status == 204
    finally:
        await service.stop()


async def test_receiver_down_then_up_gets_everything_once(
    outbox: OutboxStore, receiver: Receiver
) -> None:
    receiver.port = free_port()  # nobody listens yet: connection refused
    service = await start_service(outbox)
    try:
        e = await service.add_endpoint(url=receiver.url, events=["call.missed"], secret=SECRET)
        for _ in range(10):
            service.publish(notice())

        def all_tried() -> bool:
            rows = outbox.recent(e.id, 100)
            return len(rows) == 10 and all(r.attempts >= 2 for r in rows)

        await wait_until(all_tried, what="two failed attempts each")
        row = outbox.recent(e.id, 1)[0]
        assert row.state == PENDING and row.last_status is None and row.last_error
        await receiver.start()
        await wait_until(
            lambda: set(states(outbox, e.id).values()) == {DELIVERED}, what="all delivered"
        )
        ids = receiver.deliveries()
        assert len(ids) == 10 and len(set(ids)) == 10
        assert all(r.valid for r in receiver.requests)
    finally:
        await service.stop()


async def test_redirects_are_not_followed(outbox: OutboxStore, receiver: Receiver) -> None:
    elsewhere = await Receiver().start()
    receiver.answer = lambda _n: 302
    receiver.location = elsewhere.url
    await receiver.start()
    service = await start_service(outbox)
    try:
        e = await service.add_endpoint(url=receiver.url, events=["call.missed"], secret=SECRET)
        service.publish(notice())
        await wait_until(lambda: len(receiver.requests) >= 2, what="a retry after the 302")
        row = outbox.recent(e.id, 1)[0]
        assert row.state == PENDING and row.last_status == 302
        assert "redirect" in (row.last_error or "")
        assert elsewhere.requests == []
    finally:
        await service.stop()
        await elsewhere.stop()


async def test_gives_up_after_the_retry_period(outbox: OutboxStore, receiver: Receiver) -> None:
    receiver.answer = lambda _n: 503
    await receiver.start()
    settings = WebhookSettings(timeout=2.0, retry_initial=0.05, retry_max=0.1, give_up_after=0.5)
    service = await start_service(outbox, settings)
    try:
        e = await service.add_endpoint(url=receiver.url, events=["call.missed"], secret=SECRET)
        service.publish(notice())
        await wait_until(lambda: FAILED in states(outbox, e.id).values(), what="given up")
        row = outbox.recent(e.id, 1)[0]
        assert row.attempts == len(receiver.requests) >= 2
        assert row.last_status == 503 and row.next_attempt_at is None
        assert (await service.counts(e.id))[FAILED] == 1
    finally:
        await service.stop()


async def test_send_test_event(outbox: OutboxStore, receiver: Receiver) -> None:
    await receiver.start()
    service = await start_service(outbox)
    try:
        e = await service.add_endpoint(
            url=receiver.url, events=["call.ended"], secret=SECRET, enabled=False
        )
        delivery = service.send_test(e.id)  # a disabled endpoint can still be tested
        await wait_until(lambda: receiver.deliveries() == [delivery], what="the test event")
        got = receiver.requests[0]
        assert got.headers["x-uacsta-event"] == TEST_EVENT and got.valid
        assert got.json["type"] == TEST_EVENT and got.json["data"]["endpoint"] == e.id
        with pytest.raises(KeyError):
            service.send_test("nope")
    finally:
        await service.stop()


async def test_full_queue_drops_the_oldest(outbox: OutboxStore) -> None:
    service = WebhookService(outbox, WebhookSettings(queue_size=3))
    outbox.add_endpoint(url="http://127.0.0.1:9/", secret=SECRET, events=["call.missed"])
    await service.reload()  # endpoints known, writer not running (the database "down")
    for _ in range(5):
        service.publish(notice())
    assert service.stats.dropped == 2 and len(service._queue) == 3


async def test_a_failed_outbox_write_is_retried_without_loss(
    outbox: OutboxStore, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    await receiver.start()
    service = await start_service(outbox)
    real = outbox.enqueue
    failures: list[int] = []

    def flaky(rows: list[object]) -> int:
        if not failures:
            failures.append(len(rows))
            raise OSError("disk full")
        return real(rows)  # type: ignore[arg-type]

    monkeypatch.setattr(outbox, "enqueue", flaky)
    try:
        e = await service.add_endpoint(url=receiver.url, events=["call.missed"], secret=SECRET)
        for _ in range(3):
            service.publish(notice())
        await wait_until(lambda: len(set(receiver.deliveries())) == 3, what="3 deliveries")
        assert failures == [3] and service.stats.dropped == 0
        assert len(outbox.recent(e.id)) == 3
    finally:
        await service.stop()


async def test_publish_never_waits_for_the_database(outbox: OutboxStore) -> None:
    service = await start_service(outbox)
    try:
        e = await service.add_endpoint(
            url="http://127.0.0.1:9/", events=["call.missed"], secret=SECRET
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(1000):
            service.publish(notice())
        assert loop.time() - started < 0.5  # no I/O on the event path
        await wait_until(lambda: service.stats.written == 1000, what="the batched flushes")
        assert len(outbox.recent(e.id, 2000)) == 1000
    finally:
        await service.stop()


async def test_restart_in_process_stop_flushes_and_abandoned_instance_loses_nothing(
    db_url: str, receiver: Receiver
) -> None:
    """Two service instances over one SQLite file: the first is stopped right after
    publishing (its queue is flushed by stop), a second is abandoned without stop once its
    rows were written (as after SIGKILL); a third delivers all of them, once each."""
    receiver.port = free_port()
    first_store = Store(db_url)
    first = await start_service(OutboxStore(first_store))
    e = await first.add_endpoint(url=receiver.url, events=["call.missed"], secret=SECRET)
    ids = [first.send_test(e.id) for _ in range(5)]
    await first.stop()  # SIGTERM path: flush, then stop
    first_store.close()

    second_store = Store(db_url)
    second_outbox = OutboxStore(second_store)
    second = await start_service(second_outbox)
    ids += [second.send_test(e.id) for _ in range(5)]
    await wait_until(lambda: len(second_outbox.recent(e.id, 100)) == 10, what="flushed rows")
    # "SIGKILL": its tasks end without the stop path (no flush, no marks, attempts cut off).
    second._closing = True
    tasks = [t for t in (second._writer, second._sender, *second._inflight.values()) if t]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert second._client is not None
    await second._client.aclose()
    second_store.close()

    await receiver.start()
    third_store = Store(db_url)
    third_outbox = OutboxStore(third_store)
    third = await start_service(third_outbox)
    try:
        await wait_until(
            lambda: set(states(third_outbox, e.id).values()) == {DELIVERED}, what="all sent"
        )
        assert sorted(receiver.deliveries()) == sorted(ids)
    finally:
        await third.stop()
        third_store.close()


# --- the real server as a subprocess: SIGTERM, SIGKILL, receiver back ----------------------------


def write_config(folder: Path, url: str = "") -> Path:
    """The server's settings; ``url``: ``store.url`` (empty: SQLite in the data directory)."""
    config = folder / "uacsta.toml"
    config.write_text(
        "\n".join(
            [
                "[phones]",
                'listen = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]',
                'password = "phone-secret"',
                "[clients]",
                'sip_listen = ["tcp:127.0.0.1:0"]',
                'csta_listen = ["tcp:127.0.0.1:0"]',
                "[store]",
                f'path = "{folder / "data"}"',
                f'url = "{url}"',
                "[http]",
                'listen = "tcp:127.0.0.1:0"',
                "[log]",
                'level = "INFO"',
                "[webhooks]",
                "retry_initial = 0.1",
                "retry_max = 0.5",
                "",
            ]
        )
    )
    return config


class Serve:
    """``python -m uacsta.cli serve`` with its control socket."""

    def __init__(self, folder: Path, url: str = "") -> None:
        self.folder = folder
        self.config = write_config(folder, url)
        self.sock = folder / "data" / "uacsta.sock"
        self.proc: asyncio.subprocess.Process | None = None
        self.runs = 0

    async def start(self) -> None:
        from uacsta.control import call

        self.runs += 1
        log = (self.folder / f"server-{self.runs}.log").open("wb")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "uacsta.cli",
            "serve",
            "--config",
            str(self.config),
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            cwd=self.folder,
        )
        log.close()
        answer: dict[str, object] | None = None

        async def up() -> bool:
            nonlocal answer
            assert self.proc is not None
            assert self.proc.returncode is None, self.tail()
            answer = await call(self.sock, {"cmd": "status"}, timeout=2.0)
            return bool(answer and answer.get("ok"))

        deadline = asyncio.get_running_loop().time() + 60
        while not await up():
            assert asyncio.get_running_loop().time() < deadline, "server did not start"
            await asyncio.sleep(0.05)

    async def send_test(self, endpoint_id: str) -> str:
        from uacsta.control import call

        answer = await call(self.sock, {"cmd": "webhook-test", "endpoint": endpoint_id})
        assert answer is not None and answer["ok"], answer
        return str(answer["delivery"])

    async def end(self, sig: signal.Signals) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            return await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            raise AssertionError(f"server did not exit on {sig.name}:\n{self.tail()}") from None

    def tail(self) -> str:
        return (self.folder / f"server-{self.runs}.log").read_text(errors="replace")[-3000:]


@pytest.mark.timeout(180)
async def test_real_server_sigterm_sigkill_then_receiver_back(
    tmp_path: Path, store_url: str
) -> None:
    """Acceptance: the receiver is down; the server queues events and is stopped with SIGTERM
    (its in-memory queue flushed), restarted, queues more and is SIGKILLed once they are in
    the outbox; the receiver comes back and the server is started again: every event arrives,
    none twice (by delivery ID), each correctly signed. SQLite in the data directory (the
    default), and PostgreSQL (``store.url``)."""
    receiver = Receiver(secret=SECRET, port=free_port())
    postgres = store_url.startswith("postgresql")
    db_url = store_url if postgres else f"sqlite:///{tmp_path / 'data' / 'uacsta.db'}"
    store = Store(db_url)
    outbox = OutboxStore(store)
    e = outbox.add_endpoint(url=receiver.url, secret=SECRET, events=list(EVENT_TYPES))
    server = Serve(tmp_path, store_url if postgres else "")
    try:
        # 1. receiver down; SIGTERM right after queueing: stop() must flush the queue.
        await server.start()
        ids = [await server.send_test(e.id) for _ in range(20)]
        assert await server.end(signal.SIGTERM) == 0, server.tail()
        rows = outbox.recent(e.id, 1000)
        assert {r.id for r in rows} == set(ids), server.tail()
        assert {r.state for r in rows} == {PENDING}

        # 2. restarted, more events; SIGKILL once they are in the outbox (and tried).
        await server.start()
        ids += [await server.send_test(e.id) for _ in range(20)]

        def written_and_tried() -> bool:
            found = outbox.recent(e.id, 1000)
            return len(found) == 40 and all(r.attempts >= 1 for r in found)

        await wait_until(written_and_tried, timeout=30, what="40 rows, each tried")
        assert await server.end(signal.SIGKILL) == -signal.SIGKILL
        assert receiver.requests == []

        # 3. the receiver comes back, the server starts again: everything arrives once.
        await receiver.start()
        await server.start()
        await wait_until(
            lambda: outbox.counts(e.id) == {PENDING: 0, DELIVERED: 40, FAILED: 0},
            timeout=60,
            what="all 40 delivered",
        )
        assert await server.end(signal.SIGTERM) == 0, server.tail()
        delivered = receiver.deliveries()
        assert sorted(delivered) == sorted(ids)  # every one, none twice
        assert len(receiver.requests) == 40
        assert all(r.valid and r.json["id"] == r.delivery for r in receiver.requests)
        assert all(r.json["type"] == TEST_EVENT for r in receiver.requests)
        for run in range(1, server.runs + 1):  # secrets are never logged
            assert SECRET not in (tmp_path / f"server-{run}.log").read_text(errors="replace")
    finally:
        if server.proc is not None and server.proc.returncode is None:
            server.proc.kill()
            await server.proc.wait()
        await receiver.stop()
        store.close()


def test_verify_helper_rejects_stale_and_forged() -> None:
    body = b"{}"
    now = int(datetime.now().timestamp())
    good = {"x-uacsta-timestamp": str(now), "x-uacsta-signature": sign(SECRET, now, body)}
    assert verify(SECRET, good, body)
    assert not verify("other-secret-000000", good, body)
    stale = {
        "x-uacsta-timestamp": str(now - 3600),
        "x-uacsta-signature": sign(SECRET, now - 3600, body),
    }
    assert not verify(SECRET, stale, body)


def test_the_documented_verification_example_accepts_our_signatures() -> None:
    """The Python example in docs/webhooks.md, run as written, against real headers."""
    import re
    import time

    doc = (Path(__file__).parents[2] / "docs" / "webhooks.md").read_text(encoding="utf-8")
    (example,) = re.findall(r"```python\n(.*?)```", doc, re.S)
    namespace: dict[str, object] = {}
    exec(example, namespace)
    check = namespace["verify"]
    assert callable(check)
    body = build_payload(
        delivery_id="d", event_id="e", event_type="call.ended", created=0.0, data={}
    ).encode()
    headers = signature_headers(
        secret=SECRET,
        delivery_id="d",
        event_type="call.ended",
        body=body,
        timestamp=int(time.time()),
    )
    assert check(SECRET, headers, body)
    assert not check("another-secret-1234", headers, body)
    assert not check(SECRET, headers, body + b" ")
    old = signature_headers(
        secret=SECRET,
        delivery_id="d",
        event_type="call.ended",
        body=body,
        timestamp=int(time.time()) - 3600,
    )
    assert not check(SECRET, old, body)
