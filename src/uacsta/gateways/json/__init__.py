"""The JSON CSTA gateway: REST under ``/api/v1/devices`` and a WebSocket for events.

A client gateway like TR/87 and CSTA-over-TCP, over HTTP: :mod:`.routes` (devices, calls,
features), :mod:`.events` (the ``/api/v1/events`` WebSocket), :mod:`.client` (a REST request
as a client of the switching function) and :mod:`.shapes` (CSTA messages as JSON). The server
mounts :data:`router` on the web application beside the management API.
"""

from __future__ import annotations

from fastapi import APIRouter

from uacsta.gateways.json import events, routes

__all__ = ["router"]

#: Every route of the gateway (the REST routes, then the WebSocket).
router = APIRouter()
router.include_router(routes.router)
router.include_router(events.router)
