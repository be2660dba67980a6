"""GetCSTAFeatures per device: a client bound to some lines hears what their phones offer."""

from __future__ import annotations

from uacsta.csta import messages as m
from uacsta.phones.vendors import PROFILES
from uacsta.switch.function import SwitchingFunction, ToClient


def _features(sf: SwitchingFunction, client: str) -> frozenset[str]:
    (action,) = sf.client_request(client, 1, m.GetCSTAFeatures())
    assert isinstance(action, ToClient)
    assert isinstance(action.message, m.GetCSTAFeaturesResponse)
    return action.message.supported_services


def test_features_follow_the_phones_of_the_clients_devices() -> None:
    sf = SwitchingFunction()
    sf.phone_ready("805EC0000001", ["sip:100@pbx"], offered=PROFILES["yealink"].services())
    sf.phone_ready("02005E000002", ["sip:200@pbx"])  # an unrecognised phone: everything
    sf.client_attach("on-yealink", allowed_devices=["100"])
    sf.client_attach("on-other", allowed_devices=["200"])
    sf.client_attach("anyone")

    yealink = _features(sf, "on-yealink")
    assert "getMessageWaitingIndicator" in yealink and "reconnectCall" in yealink
    assert "snapshotCall" not in yealink and "setMessageWaitingIndicator" not in yealink
    assert "monitorStart" in yealink  # answered by uacsta itself
    other = _features(sf, "on-other")
    assert {"snapshotCall", "setMessageWaitingIndicator"} <= other
    assert _features(sf, "anyone") == other
