"""Persistence: the phone inventory and runtime settings (SQLite by default, any SQLAlchemy URL)."""

from uacsta.store.db import PhoneRecord, Store

__all__ = ["PhoneRecord", "Store"]
