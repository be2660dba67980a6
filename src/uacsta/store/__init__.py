"""Persistence: the phone inventory, runtime settings and the call journal (SQLite by
default, any SQLAlchemy URL)."""

from uacsta.store import journal  # the call_journal table joins the metadata create_all uses
from uacsta.store.db import PhoneRecord, Store

__all__ = ["PhoneRecord", "Store", "journal"]
