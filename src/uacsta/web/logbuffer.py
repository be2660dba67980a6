"""Log capture for the web admin's diagnostics (estos manual §3.7, §3.9).

One :class:`LogCapture` per process hangs on the ``uacsta`` logger: a bounded ring buffer of
formatted records for the status and diagnostics pages, and, when ``log.directory`` is set, a
rotating log file (``log.max_file_size``; with ``log.delete_daily`` the files are deleted when
the date changes). The MAC filter (``log.mac_filter``) limits the file to records that mention
one of the listed phones, so a problem with one telephone can be followed in a busy server.

Call :func:`install` once the server's settings are known (the web admin does it lazily on its
first request) and :func:`uninstall` when the server stops.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import logging.handlers
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from uacsta.config import LogSettings
from uacsta.phones.mac import format_mac, normalize_mac

if TYPE_CHECKING:
    from uacsta.config import Settings


class Owner(Protocol):
    """What the capture serves: anything with the settings in force (the running server)."""

    @property
    def settings(self) -> Settings: ...


LOGGER = "uacsta"
FILE_NAME = "uacsta.log"
#: Rotated files kept next to the current one.
BACKUP_COUNT = 9
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


@dataclass(frozen=True, slots=True)
class Entry:
    """One captured record: what the pages filter on, and its formatted line."""

    created: float
    level: int
    levelname: str
    name: str
    message: str
    line: str

    def mentions(self, macs: Iterable[str]) -> bool:
        return _mentions(self.message.upper(), macs)


def _mac_forms(macs: Iterable[str]) -> list[str]:
    forms: list[str] = []
    for text in macs:
        mac = normalize_mac(text)
        if mac is not None:
            forms += [mac, format_mac(mac), format_mac(mac).replace(":", "-")]
    return forms


def _mentions(upper_text: str, forms: Iterable[str]) -> bool:
    return any(form in upper_text for form in forms)


def parse_mac_filter(text: str) -> tuple[list[str], list[str]]:
    """``"AABBCCDDEEFF, 00:11:22:33:44:55"`` → (normalized MACs, entries that are not MACs)."""
    good: list[str] = []
    bad: list[str] = []
    for part in text.replace(";", ",").replace("\n", ",").split(","):
        item = part.strip()
        if not item:
            continue
        mac = normalize_mac(item)
        if mac is None:
            bad.append(item)
        elif mac not in good:
            good.append(mac)
    return good, bad


class MacFilter(logging.Filter):
    """Pass only records mentioning one of the MACs (in the message or a ``mac`` field)."""

    def __init__(self, macs: Iterable[str]) -> None:
        super().__init__()
        self.forms = _mac_forms(macs)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.forms:
            return True
        mac = getattr(record, "mac", None)
        if isinstance(mac, str) and _mentions(mac.upper(), self.forms):
            return True
        try:
            text = record.getMessage()
        except Exception:  # a broken format string must not break logging
            text = str(record.msg)
        return _mentions(text.upper(), self.forms)


class DailyRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Size-based rotation; with ``delete_daily`` every log file is removed at the first record
    of a new day (estos manual §3.9 "Delete log files daily")."""

    def __init__(self, path: Path, max_bytes: int, *, delete_daily: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(
            path, maxBytes=max(0, max_bytes), backupCount=BACKUP_COUNT, encoding="utf-8"
        )
        self.delete_daily = delete_daily
        self.day = dt.date.today()

    def emit(self, record: logging.LogRecord) -> None:
        if self.delete_daily:
            today = dt.date.fromtimestamp(record.created)
            if today != self.day:
                self.day = today
                self.delete_files()
        super().emit(record)

    def delete_files(self) -> None:
        path = Path(self.baseFilename)
        if self.stream is not None:
            self.stream.close()
            self.stream = None  # type: ignore[assignment,unused-ignore]
        for old in path.parent.glob(path.name + "*"):
            with contextlib.suppress(OSError):
                old.unlink()


class LogCapture(logging.Handler):
    """The ring buffer handler; also owns the optional file handler."""

    def __init__(self, capacity: int = 5000) -> None:
        super().__init__(logging.NOTSET)
        self.entries: deque[Entry] = deque(maxlen=capacity)
        self.setFormatter(logging.Formatter(FORMAT))
        self.file_handler: DailyRotatingFileHandler | None = None
        self.file_error: str | None = None
        self.settings = LogSettings()
        self._lock_entries = threading.Lock()

    # --- logging.Handler -----------------------------------------------------------------
    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        entry = Entry(record.created, record.levelno, record.levelname, record.name, message, line)
        with self._lock_entries:
            self.entries.append(entry)

    # --- configuration -------------------------------------------------------------------
    def configure(self, settings: LogSettings) -> None:
        """Apply the log settings: level of the ``uacsta`` logger, file, size, MAC filter."""
        self.settings = settings
        logger = logging.getLogger(LOGGER)
        logger.setLevel(getattr(logging, settings.level.upper(), logging.INFO))
        self._close_file()
        self.file_error = None
        if settings.directory:
            try:
                handler = DailyRotatingFileHandler(
                    Path(settings.directory) / FILE_NAME,
                    settings.max_file_size,
                    delete_daily=settings.delete_daily,
                )
            except OSError as exc:
                self.file_error = f"cannot write logs to {settings.directory}: {exc}"
                logger.error("%s", self.file_error)
            else:
                handler.setFormatter(logging.Formatter(FORMAT))
                handler.addFilter(MacFilter(settings.mac_filter))
                logger.addHandler(handler)
                self.file_handler = handler

    def _close_file(self) -> None:
        if self.file_handler is not None:
            logging.getLogger(LOGGER).removeHandler(self.file_handler)
            self.file_handler.close()
            self.file_handler = None

    def close(self) -> None:
        self._close_file()
        super().close()

    # --- reading -------------------------------------------------------------------------
    def snapshot(self) -> list[Entry]:
        with self._lock_entries:
            return list(self.entries)

    def select(
        self,
        *,
        min_level: int = logging.NOTSET,
        text: str = "",
        macs: Iterable[str] = (),
        limit: int | None = None,
    ) -> list[Entry]:
        """The newest ``limit`` entries at or above ``min_level`` containing ``text``
        (case-insensitive) and, when ``macs`` is not empty, mentioning one of them."""
        forms = _mac_forms(macs)
        needle = text.strip().lower()
        out: list[Entry] = []
        for entry in reversed(self.snapshot()):
            if entry.level < min_level:
                continue
            if needle and needle not in entry.line.lower():
                continue
            if forms and not entry.mentions(forms):
                continue
            out.append(entry)
            if limit is not None and len(out) >= limit:
                break
        out.reverse()
        return out

    def file_paths(self) -> list[Path]:
        if self.file_handler is None:
            return []
        base = Path(self.file_handler.baseFilename)
        rotated = sorted(
            (p for p in base.parent.glob(base.name + ".*") if p.suffix[1:].isdigit()),
            key=lambda p: int(p.suffix[1:]),
            reverse=True,
        )
        return [*rotated, base] if base.exists() else rotated


class _Installed:
    """The process-wide capture (logging is process-wide) and the server it serves."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.capture: LogCapture | None = None
        self.owner: Any = None
        self.previous_level: int | None = None


_state = _Installed()


def current() -> LogCapture | None:
    return _state.capture


def install(server: Owner) -> LogCapture:
    """Attach the capture to the ``uacsta`` logger for ``server`` (idempotent per server;
    a new server in the same process takes it over and reconfigures it)."""
    with _state.lock:
        capture = _state.capture
        if capture is None:
            _state.previous_level = logging.getLogger(LOGGER).level
            capture = _state.capture = LogCapture()
            logging.getLogger(LOGGER).addHandler(capture)
        if _state.owner is not server:
            _state.owner = server
            capture.configure(server.settings.log)
        return capture


def installed_for(server: Owner) -> LogCapture | None:
    return _state.capture if _state.owner is server else None


def uninstall() -> None:
    """Detach the capture and its file; the ``uacsta`` logger gets its former level back."""
    with _state.lock:
        capture = _state.capture
        if capture is None:
            return
        logger = logging.getLogger(LOGGER)
        logger.removeHandler(capture)
        capture.close()
        if _state.previous_level is not None:
            logger.setLevel(_state.previous_level)
        _state.capture, _state.owner, _state.previous_level = None, None, None


def lines(entries: Iterable[Entry]) -> Iterator[str]:
    for entry in entries:
        yield entry.line + "\n"
