"""``/metrics`` (Prometheus text format): phones by state, clients, monitors, relayed traffic,
CSTA request latency by service."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

router = APIRouter()


class Metrics:
    """One registry per server (tests run several servers in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.phones = Gauge("uacsta_phones", "Phones by state", ["state"], registry=self.registry)
        self.clients = Gauge("uacsta_clients", "Connected CTI clients", registry=self.registry)
        self.monitors = Gauge("uacsta_monitors", "Client monitors", registry=self.registry)
        self.phone_monitors = Gauge(
            "uacsta_phone_monitors", "Monitor points in phones", registry=self.registry
        )
        self.devices = Gauge("uacsta_devices", "Lines of ready phones", registry=self.registry)
        self.requests = Counter(
            "uacsta_phone_requests",
            "CSTA requests relayed to phones",
            registry=self.registry,
        )
        self.events = Counter(
            "uacsta_events_relayed", "CSTA events delivered to clients", registry=self.registry
        )
        self.latency = Histogram(
            "uacsta_phone_request_seconds",
            "Time for a phone to answer a CSTA request",
            ["service"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.connections = Gauge(
            "uacsta_connections",
            "Open inbound TCP/TLS connections by listener kind",
            ["kind"],
            registry=self.registry,
        )
        self.connection_closes = Counter(
            "uacsta_connections_refused",
            "Inbound connections refused at accept (limit) or closed for a handshake or idle "
            "timeout, by listener kind",
            ["kind", "reason"],
            registry=self.registry,
        )
        self.sip_flood = Counter(
            "uacsta_sip_flood",
            "Phone flows over their message rate: UDP datagrams dropped, connections paused",
            ["action"],
            registry=self.registry,
        )
        self._requests_seen = 0
        self._events_seen = 0
        self._counted: dict[tuple[object, ...], int] = {}

    def observe(self, service: str, seconds: float) -> None:
        self.latency.labels(service).observe(seconds)

    def refresh(self, status: dict[str, object]) -> None:
        phones = status.get("phones")
        if isinstance(phones, dict):
            for state, count in phones.items():
                self.phones.labels(state).set(count)
        for gauge, key in (
            (self.clients, "clients"),
            (self.monitors, "monitors"),
            (self.phone_monitors, "phone_monitors"),
            (self.devices, "devices"),
        ):
            value = status.get(key)
            if isinstance(value, int):
                gauge.set(value)
        relayed = status.get("requests_relayed")
        if isinstance(relayed, int) and relayed > self._requests_seen:
            self.requests.inc(relayed - self._requests_seen)
            self._requests_seen = relayed
        events = status.get("events_relayed")
        if isinstance(events, int) and events > self._events_seen:
            self.events.inc(events - self._events_seen)
            self._events_seen = events
        connections = status.get("connections")
        if isinstance(connections, dict):
            for kind, counts in connections.items():
                self.connections.labels(kind).set(counts["open"])
                for reason in ("refused", "timed_out"):
                    self._advance(self.connection_closes, (kind, reason), counts[reason])
        flood = status.get("sip_flood")
        if isinstance(flood, dict):
            for action, count in flood.items():
                self._advance(self.sip_flood, (action,), count)

    def _advance(self, counter: Counter, labels: tuple[str, ...], total: int) -> None:
        """Bring a labelled counter up to a running total kept elsewhere."""
        key = (id(counter), *labels)
        seen = self._counted.get(key, 0)
        if total > seen:
            counter.labels(*labels).inc(total - seen)
            self._counted[key] = total


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    server = request.app.state.server
    server.metrics.refresh(server.status())
    return Response(generate_latest(server.metrics.registry), media_type=CONTENT_TYPE_LATEST)
