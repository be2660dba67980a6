"""Server-side web sessions and API tokens in the store: expiry, the per-user bound, revocation.

A real database of each engine (SQLite, PostgreSQL); times are given explicitly (ISO 8601 UTC).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from uacsta.store.db import Store
from uacsta.web.auth import ALL_SCOPES, Auth, Principal, Refusal, token_hash


@pytest.fixture
def store_at(store_url: str) -> Iterator[Store]:
    store = Store(store_url)
    yield store
    store.close()


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def test_a_session_ends_at_its_expiry(store_at: Store) -> None:
    store = store_at
    auth = Auth(store, session_lifetime=60)
    auth.set_password("alice", "pw-alice-1", role="user", extension="100")
    session_id = auth.open_session("alice")
    now = datetime.now(UTC)
    user = store.session_user(token_hash(session_id), _iso(now))
    assert user is not None and user["name"] == "alice"
    assert store.session_user(token_hash(session_id), _iso(now + timedelta(seconds=61))) is None
    # The cookie's ID itself is not stored, only its hash.
    assert store.session_user(session_id, _iso(now)) is None


def test_a_user_keeps_at_most_max_sessions(store_at: Store) -> None:
    store = store_at
    auth = Auth(store, max_sessions_per_user=2)
    auth.set_password("alice", "pw-alice-1", role="user", extension="100")
    auth.set_password("bob", "pw-bob-1", role="user", extension="200")
    first, second, third = (auth.open_session("alice") for _ in range(3))
    bob = auth.open_session("bob")
    live = [s for s in (first, second, third) if store.session_user(token_hash(s))]
    assert len(live) == 2 and third in live
    assert store.session_user(token_hash(bob)) is not None  # another user's are untouched


def test_password_change_and_deletion_end_the_users_sessions(store_at: Store) -> None:
    store = store_at
    auth = Auth(store)
    auth.set_password("alice", "pw-alice-1", role="user", extension="100")
    auth.set_password("bob", "pw-bob-1", role="user", extension="200")
    alice, bob = auth.open_session("alice"), auth.open_session("bob")
    auth.set_password("alice", "pw-alice-2", role="user", extension="100")
    assert store.session_user(token_hash(alice)) is None
    assert store.session_user(token_hash(bob)) is not None
    store.delete_user("bob")
    assert store.session_user(token_hash(bob)) is None


def test_tokens_carry_scopes_and_expiry(store_at: Store) -> None:
    store = store_at
    auth = Auth(store)
    _, full = auth.create_token("full")
    _, read = auth.create_token("wallboard", scopes={"read"})
    _, old = auth.create_token("old", expires=datetime.now(UTC) + timedelta(days=1))
    found = auth.authenticate_token(full)
    assert isinstance(found, Principal) and found.scopes == ALL_SCOPES
    found = auth.authenticate_token(read)
    assert isinstance(found, Principal) and found.scopes == frozenset({"read"})
    assert found.may("read") and not found.may("control") and not found.may("admin")
    assert isinstance(auth.authenticate_token(old), Principal)
    # A day later the token has expired: refused with the reason, not mistaken for unknown.
    store.engine.dispose()
    with store.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE api_tokens SET expires = :expires WHERE name = 'old'"),
            {"expires": _iso(datetime.now(UTC) - timedelta(seconds=1))},
        )
    refused = auth.authenticate_token(old)
    assert isinstance(refused, Refusal) and "expired" in refused.reason
    assert auth.check_token(old) is None
    assert auth.authenticate_token("uac_unknown") is None
