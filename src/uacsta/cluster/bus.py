"""Names on the bus and what travels under them (sans-IO: bytes in, values out).

One cluster (``cluster.name``) uses:

- key-value bucket ``<name>_nodes``: one key per live node (``node.<id>``), its lease: the
  bucket's max age is the lease time, each node rewrites its key every third of it;
- key-value bucket ``<name>_phones``: one key per phone (its MAC), a
  :class:`~uacsta.cluster.rules.PhoneEntry` written only with compare-and-set;
- subject ``<name>.node.<id>.req``: CSTA requests for the phones a node owns;
- subject ``<name>.evt.<mac>``: every CSTA event of a phone, published by its owner;
- subject ``<name>.evt.reply.<id>.<n>``: the owner's answer to node ``<id>``'s request ``n``.

Answers travel under ``evt`` on purpose: a node reads one subscription (``<name>.evt.>``),
so it sees a phone's answer and the events the phone sent after it in the order the owner
published them, as a single node does (clients get the answer first).

CSTA travels as ECMA-323 XML (the codec the phones' side uses), so nothing new is invented
for the wire: a request on the bus is exactly what goes to the phone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from uacsta.csta import codec
from uacsta.csta import messages as m


@dataclass(frozen=True, slots=True)
class Names:
    cluster: str

    @property
    def nodes_bucket(self) -> str:
        return f"{self.cluster}_nodes"

    @property
    def phones_bucket(self) -> str:
        return f"{self.cluster}_phones"

    @staticmethod
    def node_key(node: str) -> str:
        return f"node.{node}"

    @staticmethod
    def node_of_key(key: str) -> str | None:
        prefix, _, node = key.partition(".")
        return node if prefix == "node" and node else None

    def requests(self, node: str) -> str:
        return f"{self.cluster}.node.{node}.req"

    def events(self, mac: str) -> str:
        return f"{self.cluster}.evt.{mac}"

    @property
    def all_events(self) -> str:
        """Events and answers (one subscription: one order)."""
        return f"{self.cluster}.evt.>"

    def reply(self, node: str, number: int) -> str:
        return f"{self.cluster}.evt.reply.{node}.{number}"

    def is_reply(self, subject: str) -> bool:
        return subject.startswith(f"{self.cluster}.evt.reply.")

    def mac_of_event_subject(self, subject: str) -> str:
        return subject.rsplit(".", 1)[-1]


def encode_request(mac: str, request: m.CstaRequest) -> bytes:
    return json.dumps({"mac": mac, "xml": codec.encode(request).decode()}).encode()


def decode_request(data: bytes) -> tuple[str, m.CstaMessage]:
    """Raises ValueError (or a CstaDecodeError) on what no node sent."""
    raw = json.loads(data)
    return str(raw["mac"]), codec.decode(str(raw["xml"]).encode())


def encode_message(message: m.CstaMessage) -> bytes:
    return codec.encode(message)


def decode_message(data: bytes) -> m.CstaMessage:
    return codec.decode(data)
