"""Prometheus metrics: requests per route (middleware), and what the store and broker hold.

Queue depth per queue is what Flower's own metrics lack; it is read from the broker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)


class BacklogCollector(Collector):
    """Reads the backlog on scrape, at most every few seconds (scrapes may be frequent)."""

    def __init__(self, read: Callable[[], dict[str, Any]], max_age: float = 5.0) -> None:
        self._read = read
        self._max_age = max_age
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, Any]] | None = None

    def _report(self) -> dict[str, Any] | None:
        with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < self._max_age:
                return self._cached[1]
            try:
                report = self._read()
            except Exception as exc:  # a scrape must not fail because the store is away
                log.warning("metrics: backlog unreadable (%s)", type(exc).__name__)
                return None
            self._cached = (time.monotonic(), report)
            return report

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # nothing read at registration; the names are fixed and ours

    def collect(self) -> Iterator[GaugeMetricFamily]:
        report = self._report()
        if report is None:
            return
        states = GaugeMetricFamily(
            "proctorq_transitions", "Transition requests by state", labels=["state"]
        )
        for state in ("pending", "applied", "noop", "rejected", "failed"):
            states.add_metric([state], report["transitions_by_state"].get(state, 0))
        yield states
        if report.get("queues") is not None:
            depth = GaugeMetricFamily(
                "proctorq_queue_depth", "Messages waiting in each queue", labels=["queue"]
            )
            for queue, count in report["queues"].items():
                depth.add_metric([queue], count)
            yield depth
        yield GaugeMetricFamily(
            "proctorq_outbox_lag_seconds",
            "Age of the oldest follow-up still pending",
            value=report["outbox_lag_seconds"] or 0.0,
        )
        yield GaugeMetricFamily(
            "proctorq_oldest_pending_seconds",
            "Age of the oldest transition request still pending",
            value=report["oldest_pending_seconds"] or 0.0,
        )
        yield GaugeMetricFamily(
            "proctorq_failed",
            "Failed requests and follow-ups, waiting for an operator",
            value=report["failed_transitions"] + report["failed_follow_ups"],
        )


def exposition(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    return generate_latest(registry), CONTENT_TYPE_LATEST
