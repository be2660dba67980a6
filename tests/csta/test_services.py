"""The registry of services agrees with the ECMA-285 ASN.1, the message classes and the codec."""

from __future__ import annotations

import pytest

from tests.csta.asn1schema import Schema
from tests.csta.test_asn1_conformance import root_type, schema  # noqa: F401 (fixture)
from uacsta.csta import codec, services
from uacsta.csta import messages as m
from uacsta.csta.services import EVENTS, SERVICES, AnsweredBy


def _request_classes() -> list[type[m.CstaRequest]]:
    return [c for c in m.MESSAGE_CLASSES.values() if issubclass(c, m.CstaRequest)]


def test_every_request_class_is_registered_exactly_once() -> None:
    registered = [s.request for s in services._SERVICES]  # as written, before the dict
    assert len(registered) == len(set(registered)) == len(SERVICES)
    assert sorted(c.__name__ for c in registered) == sorted(c.__name__ for c in _request_classes())


@pytest.mark.parametrize("service", SERVICES.values(), ids=lambda s: s.name)
def test_request_and_response_exist_in_the_asn1(
    service: services.Service,
    schema: Schema,  # noqa: F811
) -> None:
    root_type(service.request, schema)
    assert service.response is m.response_class_for(service.request)
    if service.response is not None:
        root_type(service.response, schema)


@pytest.mark.parametrize("event", EVENTS.values(), ids=lambda e: e.name)
def test_events_exist_in_the_asn1(event: services.Event, schema: Schema) -> None:  # noqa: F811
    if event.event.ON_THE_WIRE:
        root_type(event.event, schema)
    else:  # uacsta's notices (MonitorEnded) are not ECMA-285 events
        assert m.NOTICE_CLASSES[event.event.xml_name()] is event.event


def test_feature_names_are_those_the_codec_writes() -> None:
    for service in SERVICES.values():
        if service.answered_by is not AnsweredBy.CLIENT:
            assert service.feature_name in codec.FEATURE_SERVICES, service.name
    for event in EVENTS.values():
        if event.relayed and event.event.ON_THE_WIRE:
            assert event.feature_name in codec.FEATURE_EVENTS, event.name


@pytest.mark.parametrize("service", SERVICES.values(), ids=lambda s: s.name)
def test_group_is_the_list_the_codec_writes_the_service_in(service: services.Service) -> None:
    lists = {
        flag_name: group
        for group, flags in codec._FEATURE_SERVICE_LISTS
        for flag in flags
        for flag_name in (codec._FEATURE_FLAG_ALIASES.get(flag, flag),)
    }
    assert lists[service.feature_name] == service.group.value


def test_subject_fields_name_fields_of_the_request() -> None:
    for service in SERVICES.values():
        assert bool(service.subject) == (service.answered_by is AnsweredBy.PHONE), service.name
        fields = service.request.__dataclass_fields__
        for name, _kind in service.subject:
            assert name in fields, (service.name, name)


def test_derived_lists() -> None:
    assert "GetCSTAFeatures" in services.SWITCH_SERVICES
    assert "GetCSTAFeatures" not in services.PHONE_SERVICES
    assert set(services.RELAYED_SERVICES) < set(services.PHONE_SERVICES)
    assert "MonitorStart" in services.PHONE_SERVICES
    assert "CallInformation" not in services.RELAYED_EVENTS
    assert "SwFunctionDevicesChanged" not in services.PHONE_SERVICES
