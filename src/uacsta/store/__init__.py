"""Persistence: the phone inventory, runtime settings, the call journal and the webhook
outbox (SQLite by default; PostgreSQL for several nodes sharing one database,
docs/postgresql.md)."""

from uacsta.store import (
    journal,  # the call_journal table joins the metadata create_all uses
    outbox,  # noqa: F401  (its tables on the shared metadata)
)
from uacsta.store.db import PhoneRecord, Store

__all__ = ["PhoneRecord", "Store", "journal"]
