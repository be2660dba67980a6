"""The web admin (estos manual §3.2-3.9): phones, call journal, settings, status, diagnostics,
users, tokens, webhooks.

Server-rendered pages under ``/admin/``, one module per area, each calling
:mod:`uacsta.operations`; every page needs a session of a user with role "admin" (others are
sent to the login page), every POST carries the session's CSRF token (:mod:`.common`).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse

from uacsta.web.admin import diagnostics, journal, login, phones, settings, users, webhooks

router = APIRouter(prefix="/admin", include_in_schema=False)
for _area in (login, phones, journal, settings, diagnostics, users, webhooks):
    router.include_router(_area.router)


@router.get("", include_in_schema=False)
async def admin_root() -> RedirectResponse:
    return RedirectResponse("/admin/", status_code=303)
