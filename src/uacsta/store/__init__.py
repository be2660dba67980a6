"""Persistence: the phone inventory and runtime settings (SQLite by default, any SQLAlchemy URL),
and the webhook outbox."""

from uacsta.store import outbox  # noqa: F401  (its tables on the shared metadata)
from uacsta.store.db import PhoneRecord, Store

__all__ = ["PhoneRecord", "Store"]
