"""Persistence: the phone inventory, runtime settings, the call journal and the webhook
outbox (SQLite by default, any SQLAlchemy URL)."""

from uacsta.store import (
    journal,  # the call_journal table joins the metadata create_all uses
    outbox,  # noqa: F401  (its tables on the shared metadata)
)
from uacsta.store.db import PhoneRecord, Store

__all__ = ["PhoneRecord", "Store", "journal"]
