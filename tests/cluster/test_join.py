"""Joining: a node whose NATS is unreachable refuses to start (it would link phones another
node may own), and says why; the cluster's status shows in ``uacsta status``."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import pytest

from tests.cluster.conftest import Nodes
from tests.e2e.conftest import make_settings
from uacsta.cli import format_status
from uacsta.cluster import ClusterError
from uacsta.cluster.rules import PhoneEntry
from uacsta.server import Server

pytestmark = pytest.mark.cluster


async def test_a_node_without_its_nats_refuses_to_start(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    settings = make_settings(tmp_path / "data")
    settings.cluster.nats_url = f"nats://127.0.0.1:{port}"
    server = Server(settings)
    with pytest.raises(ClusterError, match="cannot join the cluster"):
        await server.start()
    assert server.phones is None or not server.phones.ua.transport.listeners


async def test_status_shows_the_cluster(nodes: Nodes) -> None:
    a = await nodes.start("a")
    status = a.status()["cluster"]
    assert status["node"] == "a" and status["cluster"] == nodes.name
    assert status["holding"] is True and status["live_nodes"] == ["a"]
    assert status["owned"] == [] and status["mirrored"] == []
    (line,) = [row for row in format_status(a.status()) if row.startswith("cluster")]
    assert f"node a of {nodes.name} (holding its lease), live nodes: a;" in line


async def test_a_new_owner_reaches_the_phone_by_its_path_else_where_it_registered_from(
    nodes: Nodes,
) -> None:
    a = await nodes.start("a")
    assert a.cluster is not None
    entry = PhoneEntry(
        owner="b",
        contact="sip:000413000001@10.1.2.3:5062",
        transport="udp",
        remote=("127.0.0.1", 40000),  # its NAT binding, as the registrar saw it
        aor="sip:000413000001@uacsta",
    )
    target = await a.cluster._target(entry)
    assert target.flow.remote == ("127.0.0.1", 40000) and target.contact == entry.contact
    edged = dataclasses.replace(entry, path=("<sip:127.0.0.1:5999;lr>",))
    target = await a.cluster._target(edged)  # behind an edge proxy: to its first hop
    assert target.flow.remote == ("127.0.0.1", 5999) and target.contact == entry.contact
