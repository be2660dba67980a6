"""The call journal page: every line's calls, newest first, with filters, pages of 50 and
a CSV download of what the filters select (``/api/v1/journal.csv``, the admin's session)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from uacsta.journal.export import direction_label, duration_text, outcome_label, outcome_words
from uacsta.store.journal import Cursor, decode_cursor, encode_cursor
from uacsta.switch.callrecord import CallRecord, Direction, Outcome
from uacsta.web.admin.common import render, require_admin
from uacsta.web.journal_api import JournalFilter, split_lines

router = APIRouter()

PAGE = 50
_MAX_FIELD = 64


def _param(request: Request, name: str) -> str:
    return request.query_params.get(name, "").strip()[:_MAX_FIELD]


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _local_midnight(day: date) -> float:
    """The start of a day in the server's time zone (the times the page shows)."""
    return datetime.combine(day, time()).astimezone().timestamp()


def _row(record: CallRecord) -> dict[str, Any]:
    started = datetime.fromtimestamp(record.started).astimezone()
    return {
        "id": record.id,
        "date": started.strftime("%Y-%m-%d"),
        "time": started.strftime("%H:%M:%S"),
        "line": record.line,
        "phone": record.phone,
        "direction": record.direction.value,
        "direction_label": direction_label(record.direction),
        "remote_number": record.remote_number or "",
        "remote_name": record.remote_name or "",
        "outcome": record.outcome.value,
        "outcome_label": outcome_label(record),
        "ring": duration_text(record.ring_seconds),
        "talk": duration_text(record.talk_seconds) if record.answered is not None else "",
        "related": ", ".join(record.related),
        "cause": record.cause or "",
    }


@router.get("/journal", response_class=HTMLResponse)
async def journal_page(request: Request) -> HTMLResponse:
    principal = require_admin(request)
    values = {
        name: _param(request, name)
        for name in ("line", "outcome", "direction", "from", "to", "remote")
    }
    errors: list[str] = []
    outcome = direction = None
    if values["outcome"]:
        try:
            outcome = Outcome(values["outcome"])
        except ValueError:
            errors.append(f"Unknown outcome {values['outcome']!r}.")
    if values["direction"]:
        try:
            direction = Direction(values["direction"])
        except ValueError:
            errors.append(f"Unknown direction {values['direction']!r}.")
    first, last = _day(values["from"]), _day(values["to"])
    for name, day in (("from", first), ("to", last)):
        if values[name] and day is None:
            errors.append(f"The date {values[name]!r} is not a date (YYYY-MM-DD).")
    lines, extensions = split_lines([values["line"]] if values["line"] else [])
    found = JournalFilter(
        lines=lines if values["line"] else None,
        extensions=extensions if values["line"] else None,
        outcome=outcome,
        direction=direction,
        since=_local_midnight(first) if first else None,
        until=_local_midnight(last + timedelta(days=1)) if last else None,
        remote=values["remote"] or None,
    )
    cursor: Cursor | None = None
    if request.query_params.get("cursor"):
        try:
            cursor = decode_cursor(request.query_params["cursor"][:512])
        except ValueError:
            errors.append("That page no longer exists; showing the newest calls.")
    rows: list[CallRecord] = []
    after: Cursor | None = None
    journal = getattr(request.app.state.server, "journal", None)
    if journal is None:
        errors.append("The call journal is not running.")
    else:
        rows, after = await journal.query(**found.arguments(), limit=PAGE, before=cursor)
    filters = {k: v for k, v in values.items() if v}
    api_filters: dict[str, str] = {
        k: v for k, v in values.items() if v and k in ("line", "outcome", "direction", "remote")
    }
    if found.since is not None:
        api_filters["since"] = repr(found.since)
    if found.until is not None:
        api_filters["until"] = repr(found.until)
    return render(
        request,
        "admin_journal.html",
        {
            "nav": "journal",
            "values": values,
            "errors": errors,
            "rows": [_row(r) for r in rows],
            "outcomes": [(o.value, outcome_words(o)) for o in Outcome],
            "directions": [(d.value, direction_label(d)) for d in Direction],
            "older": (
                "/admin/journal?" + urlencode({**filters, "cursor": encode_cursor(after)})
                if after is not None
                else None
            ),
            "newest": ("/admin/journal?" + urlencode(filters) if cursor is not None else None),
            "csv": "/api/v1/journal.csv" + ("?" + urlencode(api_filters) if api_filters else ""),
            "filtered": bool(filters),
        },
        principal=principal,
    )
