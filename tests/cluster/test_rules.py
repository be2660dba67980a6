"""The cluster's pure rules with a fake clock: lease, claims, rendezvous, the phone entry."""

from __future__ import annotations

import pytest

from uacsta.cluster.rules import (
    Lease,
    PhoneEntry,
    call_id_prefix,
    node_token,
    rendezvous,
    to_claim,
)

pytestmark = pytest.mark.cluster


def entry(owner: str, **kw: object) -> PhoneEntry:
    return PhoneEntry(
        owner=owner,
        contact="sip:0004f2000001@10.0.0.9:5062",
        transport="udp",
        remote=("10.0.0.9", 5062),
        aor="sip:0004f2000001@uacsta",
        **kw,  # type: ignore[arg-type]
    )


def test_lease_holds_until_most_of_the_lease_after_the_last_good_write_was_sent() -> None:
    lease = Lease(10.0)
    assert not lease.holding(0.0)  # never written: nothing to hold
    lease.confirmed(100.0)
    assert lease.refresh_interval == pytest.approx(10 / 3)
    assert lease.holding(100.0)
    assert lease.holding(107.49)
    # The server may expire the key at 110 (sent at 100): we stop before, with a margin.
    assert not lease.holding(107.5)
    lease.confirmed(105.0)
    assert lease.holding(112.0)
    lease.confirmed(101.0)  # an older write answered late does not move the lease back
    assert lease.expires_at() == pytest.approx(112.5)


def test_a_failed_refresh_changes_nothing_and_the_node_is_fenced_in_time() -> None:
    lease = Lease(3.0, margin=0.25)
    lease.confirmed(0.0)
    # Refreshes at 1, 2 fail (not confirmed): the node stops holding at 2.25, before the
    # store can expire its key (3.0) and another node claim its phones.
    assert lease.holding(2.2)
    assert not lease.holding(2.25)
    with pytest.raises(ValueError):
        Lease(0)


def test_rendezvous_names_one_node_and_moves_only_the_phones_of_a_node_that_left() -> None:
    macs = [f"0004f2{i:06x}" for i in range(300)]
    nodes = ["a", "b", "c"]
    before = {mac: rendezvous(mac, nodes) for mac in macs}
    assert set(before.values()) == set(nodes)  # spread over every node
    assert all(rendezvous(mac, reversed(nodes)) == before[mac] for mac in macs)  # order-free
    after = {mac: rendezvous(mac, ["a", "c"]) for mac in macs}
    for mac in macs:
        if before[mac] != "b":
            assert after[mac] == before[mac]  # a survivor's phones stay put
        else:
            assert after[mac] in ("a", "c")
    assert rendezvous("x", []) is None


def test_claims_go_to_exactly_one_live_node() -> None:
    entries = {f"0004f2{i:06x}": entry("b") for i in range(50)}
    entries["mine"] = entry("a")
    live = {"a", "c"}  # b's lease is gone
    claims_a = to_claim(entries, live, "a", held={"mine"})
    claims_c = to_claim(entries, live, "c", held=set())
    assert set(claims_a).isdisjoint(claims_c)
    assert set(claims_a) | set(claims_c) == set(entries) - {"mine"}
    # While b is live nobody claims its phones.
    assert to_claim(entries, {"a", "b", "c"}, "a", held={"mine"}) == []
    # The store names us the owner but we hold no link (we were fenced, restarted): ours.
    assert "mine" in to_claim(entries, {"a", "b", "c"}, "a", held=set())
    # ... and nobody else takes it while we are live.
    assert "mine" not in to_claim(entries, {"a", "b", "c"}, "c", held=set())


def test_phone_entry_round_trips_and_ids_are_subject_tokens() -> None:
    e = entry(
        "node-1",
        path=("sip:edge.example.com;lr",),
        user_agent="snom D785/10.1.54.13",
        ready=True,
        lines=("sip:100@pbx",),
        aliases={"sip:100@pbx": ("tel:100",)},
    )
    assert PhoneEntry.from_json(e.to_json()) == e
    with pytest.raises((ValueError, KeyError)):
        PhoneEntry.from_json(b'{"owner": "a"}')
    assert node_token("pbx-1.example.com") == "pbx-1_example_com"
    assert node_token(" ") == "node"
    assert call_id_prefix("00:04:F2:00:00:01") == "0004f2000001"
