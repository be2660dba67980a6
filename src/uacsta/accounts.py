"""Client accounts (``[[clients.accounts]]``): who may connect, and to which devices."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from uacsta.config import ClientAccount


class ClientAccounts:
    def __init__(self, accounts: Iterable[ClientAccount]) -> None:
        self._accounts = {a.name: a for a in accounts}

    def replace(self, accounts: Iterable[ClientAccount]) -> None:
        """New accounts (settings changed); open sessions keep running."""
        self._accounts = {a.name: a for a in accounts}

    def get(self, name: str | None) -> ClientAccount | None:
        return self._accounts.get(name) if name is not None else None

    def password_for(self, name: str) -> str | None:
        account = self._accounts.get(name)
        return account.password if account else None

    def authenticate(self, name: str, password: str) -> bool:
        account = self._accounts.get(name)
        # Compare even for unknown names so timing does not reveal which accounts exist.
        expected = account.password if account else "\x00unknown-account"
        ok = hmac.compare_digest(expected.encode(), password.encode())
        return ok and account is not None

    def allowed_devices(self, name: str | None) -> tuple[str, ...]:
        account = self.get(name)
        return tuple(account.devices) if account else ()
