"""The call journal API (``/api/v1/journal`` and ``.csv``) against the real server: filters,
cursor pages, scopes, a web-client user kept to their extension, the CSV file.

Records are written by hand through the server's journal writer (the call tracker feeds it
in production)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.web.conftest import A, Api, B
from uacsta.switch.callrecord import CallRecord, Direction, Outcome
from uacsta.web import journal_api

#: 2026-12-01 10:00:00 UTC
T0 = 1_796_119_200.0


def rec(n: int, line: str = A, **changes: Any) -> CallRecord:
    fields: dict[str, Any] = {
        "id": f"j{n:03d}",
        "line": line,
        "phone": "001565000001",
        "call_id": f"c{n}",
        "direction": Direction.INCOMING,
        "remote_number": f"+4930555{n:03d}",
        "started": T0 + 60 * n,
        "answered": T0 + 60 * n + 4,
        "ended": T0 + 60 * n + 64,
        "outcome": Outcome.ANSWERED,
    }
    fields.update(changes)
    return CallRecord(**fields)


def fill(api: Api) -> list[CallRecord]:
    journal = api.server.journal
    assert journal is not None
    records = [
        rec(1),
        rec(2, outcome=Outcome.MISSED, answered=None, remote_name="Ada"),
        rec(3, line=B, direction=Direction.OUTGOING, remote_number="100"),
        rec(4, outcome=Outcome.FORWARDED, target="200", related=("c9",)),
        rec(5, line=B, outcome=Outcome.BUSY, remote_number="=cmd|' /C calc'!A0"),
        rec(6, line="sip:100@other.invalid", direction=Direction.INTERNAL, remote_number="201"),
    ]
    for r in records:
        journal.add(r)  # not flushed yet: the API's read sees them anyway
    return records


def ids(body: dict[str, Any]) -> list[str]:
    return [item["id"] for item in body["items"]]


async def test_filters_and_cursor_pages(api: Api) -> None:
    records = fill(api)
    get = api.client.get
    r = await get("/api/v1/journal")
    assert r.status_code == 200, r.text
    body = r.json()
    assert ids(body) == ["j006", "j005", "j004", "j003", "j002", "j001"]
    assert body["next"] is None
    assert body["items"][2] == records[3].to_json()
    assert body["items"][2]["talk_seconds"] == 60.0 and body["items"][2]["related"] == ["c9"]

    async def found(**params: Any) -> list[str]:
        r = await get("/api/v1/journal", params=params)
        assert r.status_code == 200, r.text
        return ids(r.json())

    assert await found(line=A) == ["j004", "j002", "j001"]
    assert await found(line="100") == ["j006", "j004", "j002", "j001"]  # the extension
    assert await found(line=[A, B]) == ["j005", "j004", "j003", "j002", "j001"]
    assert await found(outcome="missed") == ["j002"]
    assert await found(direction="outgoing") == ["j003"]
    assert await found(remote="555004") == ["j004"]
    since = datetime.fromtimestamp(T0 + 120, UTC).replace(tzinfo=None).isoformat()
    assert await found(since=since, until=str(T0 + 240)) == ["j003", "j002"]
    assert await found(since=f"{since}Z", outcome="answered") == ["j006", "j003"]
    assert await found(since="2026-12-01T11:02:00+01:00", until=T0 + 181) == ["j003", "j002"]

    # Pages of two, newest first, each once.
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await get("/api/v1/journal", params=params)).json()
        assert len(page["items"]) == 2
        seen += ids(page)
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == ["j006", "j005", "j004", "j003", "j002", "j001"]

    # Bad input is a 422 with the API's error body.
    for params in (
        {"limit": 501},
        {"limit": 0},
        {"cursor": "not-a-cursor"},
        {"since": "yesterday"},
        {"until": "nan"},
        {"outcome": "lost"},
        {"direction": "sideways"},
    ):
        r = await get("/api/v1/journal", params=params)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["error"].startswith("invalid request")


async def test_scopes_users_and_csv(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(api)
    # Scopes: read is enough; without it, no.
    _id, read = api.auth.create_token("wallboard", scopes={"read"})
    _id, control = api.auth.create_token("robot", scopes={"control"})
    assert (await api.http(token=read).get("/api/v1/journal")).status_code == 200
    assert (await api.http(token=read).get("/api/v1/journal.csv")).status_code == 200
    for path in ("/api/v1/journal", "/api/v1/journal.csv"):
        r = await api.http(token=control).get(path)
        assert r.status_code == 403 and "read" in r.json()["error"]
        assert (await api.http().get(path)).status_code == 401

    # A web-client user sees the lines of their extension only.
    api.auth.set_password("alice", "pw", role="user", extension="100")
    alice = api.http(user="alice")
    r = await alice.get("/api/v1/journal")
    assert r.status_code == 200, r.text
    assert ids(r.json()) == ["j006", "j004", "j002", "j001"]
    assert ids((await alice.get("/api/v1/journal", params={"line": A})).json()) == [
        "j004",
        "j002",
        "j001",
    ]
    for line in (B, "200", [A, B]):
        r = await alice.get("/api/v1/journal", params={"line": line})
        assert r.status_code == 403, r.text
        assert "100" in r.json()["error"]
    r = await alice.get("/api/v1/journal.csv")
    assert r.status_code == 200
    assert [row[0] for row in csv.reader(io.StringIO(r.text))][1:] == [
        "j006",
        "j004",
        "j002",
        "j001",
    ]
    # A user without a line of their own sees nothing, not everything.
    api.auth.set_password("bob", "pw", role="user", extension="999")
    assert (await api.http(user="bob").get("/api/v1/journal")).json()["items"] == []

    # The CSV file, streamed in pages (three rows a query here).
    monkeypatch.setattr(journal_api, "CSV_PAGE", 3)
    r = await api.client.get("/api/v1/journal.csv")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"].startswith('attachment; filename="journal-')
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8"))))
    header, lines = rows[0], rows[1:]
    assert header[:5] == ["id", "line", "phone", "call_id", "direction"]
    assert [row[0] for row in lines] == ["j006", "j005", "j004", "j003", "j002", "j001"]
    by_id = {row[0]: dict(zip(header, row, strict=True)) for row in lines}
    assert by_id["j005"]["remote_number"] == "'=cmd|' /C calc'!A0"  # no formula
    assert by_id["j001"]["remote_number"] == "'+4930555001"
    assert by_id["j002"]["remote_name"] == "Ada" and by_id["j002"]["answered"] == ""
    assert by_id["j001"]["started"] == "2026-12-01T10:01:00.000+00:00"
    assert by_id["j004"]["target"] == "200" and by_id["j004"]["related"] == "c9"
    r = await api.client.get("/api/v1/journal.csv", params={"outcome": "busy", "line": "200"})
    assert [row[0] for row in csv.reader(io.StringIO(r.text))] == ["id", "j005"]
    r = await api.client.get("/api/v1/journal.csv", params={"since": "soon"})
    assert r.status_code == 422


async def test_the_openapi_document_shows_the_journal(api: Api) -> None:
    doc = (await api.client.get("/openapi.json")).json()
    get = doc["paths"]["/api/v1/journal"]["get"]
    assert get["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/JournalPage"
    }
    entry = doc["components"]["schemas"]["JournalEntry"]["properties"]
    assert {"outcome", "direction", "ring_seconds", "talk_seconds", "related"} <= set(entry)
    assert {p["name"] for p in get["parameters"]} >= {
        "line",
        "outcome",
        "direction",
        "since",
        "until",
        "remote",
        "limit",
        "cursor",
    }
    assert "text/csv" in doc["paths"]["/api/v1/journal.csv"]["get"]["responses"]["200"]["content"]
