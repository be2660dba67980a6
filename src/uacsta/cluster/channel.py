"""A phone linked at another node, as this node's switch relays requests to it.

The switch of every node holds every phone of the cluster (its lines, its monitor points):
a phone owned elsewhere is *mirrored* here, and this channel carries the switch's requests
for it to the owner over NATS (:meth:`ClusterNode.relay`), where they go out on the owner's
link exactly as the switch wrote them (call IDs already in the phone's terms). The answer
comes back in order with the phone's events (:mod:`uacsta.cluster.bus`). What the phone's
vendor profile refuses is refused here, as the owner's link would (the profile comes from
the User-Agent the cluster keeps).

A request whose outcome is unknown (the owner died, or no answer within the phone's CSTA
timeout plus a margin) is answered with a CSTA error and never sent again: a MakeCall must
not ring twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from uacsta.csta import messages as m
from uacsta.phones.vendors import VendorProfile

if TYPE_CHECKING:
    from uacsta.cluster.node import ClusterNode

OUT_OF_SERVICE = m.CSTAErrorCode.system_resource_availability("outOfService")


class RemotePhoneChannel:
    """The hub's :class:`~uacsta.hub.PhoneChannel` for a phone linked at ``owner``."""

    def __init__(
        self,
        node: ClusterNode,
        mac: str,
        owner: str,
        profile: VendorProfile,
        firmware: str | None,
    ) -> None:
        self.node = node
        self.mac = mac
        self.owner = owner
        self.profile = profile
        self.firmware = firmware

    def __repr__(self) -> str:
        return f"<RemotePhoneChannel {self.mac} at {self.owner}>"

    def refusal(self, request: m.CstaRequest) -> tuple[m.CSTAErrorCode, str] | None:
        return self.profile.refuse(request, self.firmware, self.mac)

    def csta_request_then(
        self, request: m.CstaRequest, done: Callable[[m.CstaMessage], None]
    ) -> None:
        self.node.relay(self.owner, self.mac, request, done)
