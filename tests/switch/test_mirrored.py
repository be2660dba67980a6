"""A phone mirrored from another node of a cluster: call-ID prefixes derived from the phone,
no monitor of the switch's own on its lines, its notices not published here (its owner
publishes them) while the clients here still get theirs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from uacsta.csta import messages as m
from uacsta.hub import PhoneChannel, SwitchHub
from uacsta.switch.callids import CallIdSpace
from uacsta.switch.callrecord import CallNotice, NoticeType
from uacsta.switch.calls import CallTracker
from uacsta.switch.function import SWITCH, SwitchingFunction, ToPhone

LINE = "sip:100@pbx.example"
MAC = "001565000001"


def test_derived_call_id_prefixes_map_both_ways() -> None:
    space = CallIdSpace(prefix_of=lambda phone: phone.lower())
    assert space.to_client("00AB", "7") == "00ab.7"
    assert space.to_phone("00ab.7") == ("00AB", "7")
    assert space.to_client("00AB", "3|4") == "00ab.3|00ab.4"
    other = CallIdSpace(prefix_of=lambda phone: phone.lower())  # another node: the same IDs
    assert other.to_client("00AB", "7") == "00ab.7" and other.to_phone("00ab.7")[0] == "00AB"
    assert CallIdSpace().to_client("00AB", "7") == "1.7"  # one node alone: counted, as before


def test_mirrored_phone_gets_no_monitor_of_the_switch_and_loses_it_when_it_moves_away() -> None:
    sf = SwitchingFunction(calls=CallTracker(), own_monitors=True)
    actions = sf.phone_ready(MAC, [LINE], mirrored=True)
    assert sf.monitors.count_of(SWITCH) == 0
    assert not [a for a in actions if isinstance(a, ToPhone)]
    # A client's monitor still starts the point through the (relaying) channel.
    started = sf.client_request("crm", 1, m.MonitorStart(monitor_object=LINE))
    assert [type(a.request) for a in started if isinstance(a, ToPhone)] == [m.MonitorStart]

    local = SwitchingFunction(calls=CallTracker(), own_monitors=True)
    local.phone_ready(MAC, [LINE])
    assert local.monitors.count_of(SWITCH) == 1  # linked here: the journal's monitor
    local.phone_lost(MAC)
    local.phone_ready(MAC, [LINE], mirrored=True)  # now linked at another node
    assert local.monitors.count_of(SWITCH) == 0
    assert not local.monitors.points


class Channel:
    def refusal(self, request: m.CstaRequest) -> tuple[m.CSTAErrorCode, str] | None:
        return None

    def csta_request_then(
        self, request: m.CstaRequest, done: Callable[[m.CstaMessage], None]
    ) -> None:
        pass  # never answered here


class Observer:
    def __init__(self, mirrored: set[str]) -> None:
        self.mirrored = mirrored
        self.ready: list[str] = []

    def is_local(self, phone: str) -> bool:
        return phone not in self.mirrored

    def phone_ready(
        self,
        phone: str,
        channel: PhoneChannel,
        lines: list[str],
        aliases: Mapping[str, Iterable[str]] | None,
    ) -> None:
        self.ready.append(phone)

    def phone_lines_changed(
        self, phone: str, lines: list[str], aliases: Mapping[str, Iterable[str]] | None
    ) -> None:
        pass

    def phone_lost(self, phone: str, reason: str) -> None:
        pass

    def phone_event(self, phone: str, event: m.CstaEvent) -> None:
        pass


def test_hub_publishes_notices_of_local_phones_only_and_tells_the_observer_of_them() -> None:
    hub = SwitchHub(SwitchingFunction(calls=CallTracker(), own_monitors=True))
    observer = Observer(mirrored={"00aa00000002"})
    hub.observer = observer
    heard: list[CallNotice] = []
    hub.notice_listeners.append(heard.append)
    hub.phone_ready(MAC, Channel(), [LINE])
    hub.phone_ready("00aa00000002", Channel(), ["sip:200@pbx.example"], mirrored=True)
    assert [(n.type, n.phone) for n in heard] == [(NoticeType.PHONE_ONLINE, MAC)]
    assert observer.ready == [MAC]  # a mirrored phone is the cluster's own doing
