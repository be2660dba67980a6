"""Well-known default credentials on listeners other machines can reach (issue 19).

uacsta ships the password ``change-me`` for the phones and the first CTI account, and its
default listeners bind every interface. A server started like that on a network accepts
anyone who reads the README. :func:`default_credentials` finds each default credential in use
on a listener that is not loopback-only; ``uacsta serve`` refuses to start on any (the error
names the setting and how to set it) unless ``--allow-default-credentials`` is given, and
then the server warns in its log, the start-up banner, every admin page and ``/healthz``.
The demo binds loopback, where the defaults are harmless, and says nothing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from uacsta.config import Settings

#: The password the defaults (and the README) give every phone and the first CTI account.
DEFAULT_PASSWORD = "change-me"
#: The command-line flag, and the environment variable that sets it, to start anyway.
ALLOW_FLAG = "--allow-default-credentials"
ALLOW_ENV = "UACSTA_ALLOW_DEFAULT_CREDENTIALS"


@dataclass(frozen=True, kw_only=True, slots=True)
class DefaultCredential:
    """One default credential and the listeners, reachable from other machines, it guards."""

    #: The setting holding it (``phones.password``, ``clients.accounts[0].password``...).
    setting: str
    #: The listener setting(s) and their non-loopback addresses.
    listeners: tuple[str, ...]
    #: How to set it: an environment variable and/or a TOML snippet.
    how: str

    @property
    def summary(self) -> str:
        return (
            f"{self.setting} is the well-known default {DEFAULT_PASSWORD!r} on listeners "
            f"other machines reach ({', '.join(self.listeners)})"
        )

    @property
    def warning(self) -> str:
        """One line for the log, the banner, the admin and /healthz."""
        return f"{self.summary}: anyone on the network can log in; set {self.setting}"

    @property
    def instructions(self) -> str:
        """The refusal's paragraph: what to change, and how."""
        return f"{self.summary}.\n{self.how}"


def is_loopback_host(host: str) -> bool:
    """True when a listener bound to ``host`` is reachable from this machine only
    (a wildcard, another interface's address or a name other than localhost: not)."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _exposed(settings_key: str, addresses: list[str]) -> list[str]:
    from uacsta.net.address import parse_listen_address

    out = []
    for address in addresses:
        if not is_loopback_host(parse_listen_address(address).host):
            out.append(f"{settings_key} {address}")
    return out


def default_credentials(settings: Settings) -> list[DefaultCredential]:
    """Each default credential in use on a listener that is not loopback-only."""
    found: list[DefaultCredential] = []
    phones = _exposed("phones.listen", settings.phones.listen)
    if phones and settings.phones.password == DEFAULT_PASSWORD:
        found.append(
            DefaultCredential(
                setting="phones.password",
                listeners=tuple(phones),
                how=(
                    "  set it in the environment: UACSTA_PHONES__PASSWORD='<a secret>'\n"
                    "  or in the --config file:   [phones]\n"
                    '                             password = "<a secret>"\n'
                    "  (or the admin's Settings page), or bind loopback only "
                    '(phones.listen = ["udp:127.0.0.1:5060", ...])'
                ),
            )
        )
    for mac, password in sorted(settings.phones.passwords.items()):
        if phones and password == DEFAULT_PASSWORD:
            found.append(
                DefaultCredential(
                    setting=f"phones.passwords.{mac}",
                    listeners=tuple(phones),
                    how=(
                        "  set it in the --config file: [phones.passwords]\n"
                        f'                               "{mac}" = "<a secret>"\n'
                        "  (or remove the override: the phone then uses phones.password)"
                    ),
                )
            )
    clients = _exposed("clients.sip_listen", settings.clients.sip_listen) + _exposed(
        "clients.csta_listen", settings.clients.csta_listen
    )
    for i, account in enumerate(settings.clients.accounts):
        if clients and account.password == DEFAULT_PASSWORD:
            found.append(
                DefaultCredential(
                    setting=f"clients.accounts[{i}].password (account {account.name!r})",
                    listeners=tuple(clients),
                    how=(
                        "  set it in the --config file: [[clients.accounts]]\n"
                        f'                               name = "{account.name}"\n'
                        '                               password = "<a secret>"\n'
                        "  (or the admin's Settings page; accounts have no environment "
                        "variable), or bind the client listeners to loopback only"
                    ),
                )
            )
    return found


class DefaultCredentialsError(Exception):
    """``serve`` refuses to start: default credentials on listeners others reach."""

    def __init__(self, found: list[DefaultCredential]) -> None:
        self.found = found
        super().__init__(refusal(found))


def refusal(found: list[DefaultCredential]) -> str:
    parts = ["refusing to start: well-known default passwords on the network."]
    parts += [c.instructions for c in found]
    parts.append(
        f"To start anyway (a lab), pass {ALLOW_FLAG} or set {ALLOW_ENV}=1: the server then "
        "warns in its log, the banner, the web admin and /healthz."
    )
    return "\n".join(parts)
