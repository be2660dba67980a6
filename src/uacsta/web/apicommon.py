"""What the JSON API's two halves share: the error JSON, who is asking, the route class.

The client gateway (:mod:`uacsta.gateways.json`: devices, calls, events) and the management
API (:mod:`uacsta.web.manage`: status, phones, tokens) both answer under ``/api/v1`` with the
same error body and the same authentication, so those live here once.

Who may do what: admin sessions everything; API tokens what their scopes allow (``read``:
GET requests and event WebSockets, ``control``: requests that change something at a device,
``admin``: phones, status and tokens), until their expiry; web-client users (role ``user``)
read and control only the devices of their extension, no phone or token administration.
Requests that change something with the session cookie carry the page's CSRF token in
``X-CSRF-Token``.

Errors say why: ``{"error", "csta_error", "detail"}`` with 404 unknown device, 403 not this
account's device, 501 service not supported by the phone, 503 phone not connected, 504 no
answer in time, 409 any other refusal by the phone, 422 bad input.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any, cast

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.requests import HTTPConnection

from uacsta.operations import OperationError, Operations
from uacsta.web import apimodels as am
from uacsta.web.auth import Auth, Principal, Refusal, check_csrf

if TYPE_CHECKING:
    from uacsta.switch.devices import Device

__all__ = [
    "Admin",
    "ApiError",
    "ApiRoute",
    "User",
    "admin_principal",
    "api_router",
    "auth_of",
    "current_principal",
    "device_json",
    "error_responses",
    "operations_of",
    "principal_of",
]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# --- errors ---------------------------------------------------------------------------------


class ApiError(Exception):
    """An API failure that knows its HTTP status and JSON body (``csta_error``: the CSTA error
    code as ``{"category", "value"}``, when the phone or the switch refused)."""

    def __init__(
        self,
        status: int,
        error: str,
        *,
        csta_error: dict[str, Any] | None = None,
        detail: Any = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.csta_error = csta_error
        self.detail = detail

    def body(self) -> dict[str, Any]:
        return {
            "error": self.error,
            "csta_error": self.csta_error,
            "detail": self.detail,
        }

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)


def api_error(exc: OperationError | RequestValidationError) -> ApiError:
    """The API's error for a refused operation or for input that failed validation."""
    if isinstance(exc, OperationError):
        return ApiError(exc.status, str(exc))
    problems = [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in exc.errors()
    ]
    text = "; ".join(f"{'.'.join(p['loc'])}: {p['msg']}" for p in problems)
    return ApiError(422, f"invalid request: {text}", detail=problems)


class ApiRoute(APIRoute):
    """Renders :class:`ApiError`, refused operations and validation errors as the error JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return exc.response()
            except (OperationError, RequestValidationError) as exc:
                return api_error(exc).response()

        return route


def error_responses(*pairs: tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting the error body for each (status, description)."""
    return {status: {"model": am.ErrorBody, "description": text} for status, text in pairs}


_ERRORS = error_responses(
    (401, "Not authenticated"), (403, "Not allowed for this account"), (422, "Invalid input")
)
NOT_FOUND = error_responses((404, "Not found"))


def api_router() -> APIRouter:
    """A router under ``/api/v1`` that answers with the API's error JSON."""
    return APIRouter(prefix="/api/v1", route_class=ApiRoute, responses=_ERRORS)


# --- what the routes reach through the application ------------------------------------------


def operations_of(conn: HTTPConnection) -> Operations:
    """The running server's operations (phones, status, devices a principal may use)."""
    return cast(Operations, conn.app.state.ops)


def auth_of(conn: HTTPConnection) -> Auth:
    return cast(Auth, conn.app.state.auth)


def device_json(conn: HTTPConnection, device: Device) -> am.Device:
    """A device (line) as the API shows it: ready while its phone's link is."""
    phone = operations_of(conn).parts.hub.switch.phones.get(device.phone)
    return am.Device(
        device=device.device_id,
        phone=device.phone,
        extension=device.extension,
        ready=bool(phone and phone.ready),
    )


# --- who is asking ----------------------------------------------------------------------------


def principal_of(conn: HTTPConnection, *, query_token: bool = False) -> Principal | Refusal | None:
    """The session or API token behind a request (``?token=`` too for WebSockets)."""
    auth = auth_of(conn)
    if query_token and "authorization" not in conn.headers:
        token = conn.query_params.get("token")
        if token:
            return auth.authenticate_token(token)
    # Auth.authenticate reads only headers and the session, which every HTTPConnection has.
    return auth.authenticate(cast(Request, conn))


def _need_scope(principal: Principal, scope: str, what: str) -> None:
    if not principal.may(scope):
        have = ", ".join(sorted(principal.scopes)) or "none"
        raise HTTPException(403, f"{what} needs the {scope!r} scope; this API token has: {have}")


def current_principal(request: Request) -> Principal:
    principal = principal_of(request)
    if isinstance(principal, Refusal):
        raise HTTPException(
            401, f"{principal.reason}: create a new one", headers={"WWW-Authenticate": "Bearer"}
        )
    if principal is None:
        raise HTTPException(
            401,
            "authentication required: send 'Authorization: Bearer <API token>' or log in",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if request.method in _SAFE_METHODS:
        _need_scope(principal, "read", "reading")
    else:
        _need_scope(principal, "control", f"{request.method} {request.url.path}")
        if principal.via == "session":
            # Cookie-authenticated changes need the page's CSRF token (header X-CSRF-Token).
            check_csrf(request, request.headers.get("x-csrf-token"))
    return principal


def admin_principal(request: Request) -> Principal:
    principal = principal_of(request)
    if isinstance(principal, Refusal) or principal is None:
        return current_principal(request)  # raises the 401 saying why
    if not principal.is_admin:
        raise HTTPException(403, "this needs an administrator or an API token")
    _need_scope(principal, "admin", f"{request.method} {request.url.path}")
    if principal.via == "session" and request.method not in _SAFE_METHODS:
        check_csrf(request, request.headers.get("x-csrf-token"))
    return principal


User = Annotated[Principal, Depends(current_principal)]
Admin = Annotated[Principal, Depends(admin_principal)]
