"""Prometheus metrics of one gateway process (one registry per app)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class Metrics:
    """Requests, latencies, Triton calls, swapper lifecycle, in-flight requests."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "facegate_requests_total", "HTTP requests", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "facegate_request_seconds",
            "HTTP request latency",
            ["route", "method"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.in_flight = Gauge("facegate_in_flight_requests", "requests being served", registry=r)
        self.rejected = Counter(
            "facegate_rejected_total", "requests refused before work", ["reason"], registry=r
        )
        self.key_in_flight = Gauge(
            "facegate_key_in_flight_requests",
            "requests being served, per API key name",
            ["key"],
            registry=r,
        )
        self.key_rejected = Counter(
            "facegate_key_rejected_total",
            "requests refused before work, per API key name and reason",
            ["key", "reason"],
            registry=r,
        )
        self.triton_latency = Histogram(
            "facegate_triton_call_seconds",
            "Triton inference call latency",
            ["model"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.triton_errors = Counter(
            "facegate_triton_errors_total", "failed Triton calls", ["model", "code"], registry=r
        )
        self.swapper_loaded = Gauge(
            "facegate_swapper_loaded", "1 while the swapper is READY", registry=r
        )
        self.swapper_loads = Counter(
            "facegate_swapper_loads_total", "swapper loads asked of Triton", registry=r
        )
        self.swapper_load_seconds = Histogram(
            "facegate_swapper_load_seconds",
            "time to load the swapper",
            buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.triton_restarts = Gauge(
            "facegate_triton_restarts",
            "restarts of the embedded Triton by `facegate serve` since it started",
            registry=r,
        )
        self.triton_down = Gauge(
            "facegate_triton_down", "1 while `facegate serve` restarts Triton", registry=r
        )
