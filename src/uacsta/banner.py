"""What ``uacsta serve`` and ``uacsta demo`` print once the server is up: the addresses it
really listens on (``Server.listening``: 0.0.0.0 is every interface, not this machine only),
where to open the web admin, and any security warning (uacsta.safety)."""

from __future__ import annotations

from typing import Protocol


class Server(Protocol):
    """What the banner reads of :class:`uacsta.server.Server`."""

    listening: list[str]
    web_url: str | None

    def security_warnings(self) -> list[str]: ...


def listening_lines(server: Server) -> list[str]:
    return [f"  listening        : {entry}" for entry in server.listening]


def warning_lines(server: Server) -> list[str]:
    warnings = server.security_warnings()
    if not warnings:
        return []
    rule = "  " + "!" * 76
    out = [rule]
    out += [f"  WARNING (security): {w}" for w in warnings]
    out.append(rule)
    return out


def serve_banner(server: Server) -> str:
    out = ["", "uacsta is running — SIGTERM or Ctrl-C stops it"]
    out += listening_lines(server)
    if server.web_url is not None:
        out += [
            f"  web admin        : {server.web_url}admin/",
            f"  API docs         : {server.web_url}docs",
        ]
    out += warning_lines(server)
    out.append("")
    return "\n".join(out)
