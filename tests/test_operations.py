"""The operations layer without a server: phones, status, devices a principal may use,
settings (validate, persist, reconfigure) and logs, with their errors; and the control
socket's mapping of those errors."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from uacsta.config import ConfigError, Settings
from uacsta.control import ControlServer
from uacsta.hub import SwitchHub
from uacsta.net.guard import ConnectionGate, GateLimits
from uacsta.operations import (
    ADMIN_CHANGES,
    Forbidden,
    Invalid,
    InvalidSetting,
    NotFound,
    Operations,
)
from uacsta.phones.inventory import Inventory
from uacsta.store.db import Store
from uacsta.web.auth import Principal

MAC = "001565AABBCC"


class FakePhones:
    """What operations ask of the phone service: enable/disable, delete, traces."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.calls: list[tuple[str, str, bool | None]] = []
        self.traces: dict[str, Any] = {}
        self.links: dict[str, Any] = {}
        transport = SimpleNamespace(flood_dropped=0, flood_pauses=0)
        self.ua = SimpleNamespace(transport=transport)

    async def set_enabled(self, mac: str, enabled: bool) -> bool:
        self.calls.append(("enabled", mac, enabled))
        record = self.inventory.get(mac)
        if record is not None:
            record.enabled = enabled
        return record is not None

    async def delete(self, mac: str) -> bool:
        self.calls.append(("delete", mac, None))
        return self.inventory.delete(mac)


class Parts:
    def __init__(self, tmp_path: Path, url: str = "") -> None:
        self.settings = Settings()
        self.started_at = 0.0
        self.data_dir = tmp_path
        self.listening = ["web http:127.0.0.1:8080"]
        self.web_url: str | None = "http://127.0.0.1:8080/"
        self.hub = SwitchHub()
        self.store: Store | None = Store(url or f"sqlite:///{tmp_path / 'uacsta.db'}")
        self.inventory: Inventory | None = Inventory(self.store)
        record, _ = self.inventory.upsert(MAC)
        record.vendor = "yealink"
        self.phones: Any = FakePhones(self.inventory)
        self.gate = ConnectionGate(
            "web", GateLimits(max_connections=10, max_connections_per_address=5)
        )
        self.reconfigured: list[tuple[Settings, Settings]] = []

    def gates(self) -> dict[str, ConnectionGate]:
        return {"web": self.gate}

    async def reconfigure(self, old: Settings, new: Settings) -> list[str]:
        self.reconfigured.append((old, new))
        return ["phone listeners"] if old.phones.listen != new.phones.listen else []


@pytest.fixture
def parts(tmp_path: Path, store_url: str) -> Iterator[Parts]:
    """The parts on a fresh database of each engine (SQLite, PostgreSQL)."""
    made = Parts(tmp_path, store_url)
    yield made
    if made.store is not None:
        made.store.close()


def test_a_phone_by_any_spelling_or_what_is_wrong(parts: Parts) -> None:
    ops = Operations(parts)
    assert ops.phone("00:15:65:AA:BB:CC").mac == MAC
    assert [r.mac for r in ops.phones()] == [MAC]
    with pytest.raises(NotFound, match="no phone with MAC 001565000001 in the inventory") as nf:
        ops.phone("00-15-65-00-00-01")
    assert nf.value.status == 404
    with pytest.raises(Invalid) as bad:
        ops.phone("nope")
    assert bad.value.field == "mac" and bad.value.status == 422
    assert "not a MAC address" in str(bad.value)


async def test_enable_disable_delete_go_to_the_phone_service(parts: Parts) -> None:
    ops = Operations(parts)
    record = await ops.set_enabled("00:15:65:aa:bb:cc", False)
    assert record.enabled is False
    await ops.delete_phone(MAC)
    assert parts.phones.calls == [("enabled", MAC, False), ("delete", MAC, None)]
    with pytest.raises(NotFound):
        await ops.delete_phone(MAC)


def test_the_one_status(parts: Parts) -> None:
    status = Operations(parts).status()
    assert status["listening"] == parts.listening
    assert status["phones"]["offline"] == 1
    assert status["connections"] == {"web": {"open": 0, "refused": 0, "timed_out": 0}}
    assert {"devices", "clients", "monitors", "requests_relayed", "sip_flood"} <= set(status)


def test_devices_a_user_may_use(parts: Parts) -> None:
    ops = Operations(parts)
    admin = Principal("admin", "admin")
    user = Principal("ann", "user", extension="100")
    assert ops.allowed_devices(admin) == []
    assert ops.allowed_devices(user) == ["100"]  # never empty: empty means everything
    with pytest.raises(Forbidden, match="may only use extension 100, not '200'"):
        ops.device(user, "200")
    with pytest.raises(NotFound, match="unknown device '100': no phone has this line"):
        ops.device(user, "100")
    with pytest.raises(NotFound, match="unknown device '999'"):
        ops.device(admin, "999")


async def test_settings_validated_persisted_then_applied(parts: Parts) -> None:
    ops = Operations(parts)
    before = parts.settings
    with pytest.raises(InvalidSetting) as refused:
        await ops.update_settings({"phones": {"registration_expires": 5}})
    assert isinstance(refused.value, ConfigError)  # as the same value in the settings file
    assert refused.value.field.startswith("phones.registration_expires")
    assert parts.settings is before and parts.reconfigured == []
    assert parts.store is not None and ADMIN_CHANGES not in parts.store.get_settings()
    restarted = await ops.update_settings({"phones": {"listen": ["udp:127.0.0.1:0"]}})
    assert restarted == ["phone listeners"]
    assert parts.settings.phones.listen == ["udp:127.0.0.1:0"]
    assert parts.reconfigured == [(before, parts.settings)]
    stored = parts.store.get_settings()[ADMIN_CHANGES]
    assert stored == {"phones": {"listen": ["udp:127.0.0.1:0"]}}


def test_logs_from_the_capture(parts: Parts) -> None:
    asked: list[dict[str, Any]] = []

    class Capture:
        def select(
            self, *, min_level: int, text: str, macs: Iterable[str], limit: int | None
        ) -> list[Any]:
            asked.append({"min_level": min_level, "text": text, "macs": macs, "limit": limit})
            return ["line"]

    assert Operations(parts).logs() == []  # no capture installed
    ops = Operations(parts, log_source=Capture)
    assert ops.logs(level="warning", text="x", limit=5) == ["line"]
    assert asked == [{"min_level": logging.WARNING, "text": "x", "macs": (), "limit": 5}]


async def test_control_socket_answers_with_the_operations_errors(parts: Parts) -> None:
    control = ControlServer(Operations(parts))
    assert (await control.handle({"cmd": "status"}))["status"]["phones"]["offline"] == 1
    phones = (await control.handle({"cmd": "phones"}))["phones"]
    assert [p["mac"] for p in phones] == [MAC]
    assert await control.handle({"cmd": "disable", "mac": "00:15:65:aa:bb:cc"}) == {
        "ok": True,
        "error": None,
    }
    assert await control.handle({"cmd": "enable", "mac": "001565000001"}) == {
        "ok": False,
        "error": "no phone with MAC 001565000001 in the inventory",
    }
    assert await control.handle({"cmd": "delete", "mac": "x"}) == {
        "ok": False,
        "error": "not a MAC address",
    }


async def test_settings_changed_in_the_admin_override_the_file_at_start(parts: Parts) -> None:
    ops = Operations(parts)
    assert await ops.restore_settings() is False  # nothing stored yet
    assert parts.store is not None
    parts.store.set_setting(ADMIN_CHANGES, {"phones": {"auto_activate": False}})
    assert await ops.restore_settings() is True
    assert parts.settings.phones.auto_activate is False
    parts.store.set_setting(ADMIN_CHANGES, {"phones": {"registration_expires": 5}})
    before = parts.settings
    assert await ops.restore_settings() is True  # logged and ignored
    assert parts.settings is before
