"""Prometheus metrics: requests per route (middleware), and what the store and broker hold.

Queue depth per queue is what Flower's own metrics lack; it is read from the broker.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

from proctoring.models import TransitionState

log = logging.getLogger(__name__)


class BacklogCollector(Collector):
    """The backlog, read from the store in a thread of its own, at most every few seconds.

    A scrape never reads the store itself: it starts a read when the figures are older than
    `max_age` (and none is under way), waits at most `wait` seconds for it, and otherwise
    serves the last figures it has, with `proctorq_store_up` 0 while the last read failed.
    A failed read counts as a read: the next is not tried for `max_age` either, so an
    unreachable store costs one connect timeout every few seconds, whatever the scrape rate.
    """

    def __init__(
        self,
        read: Callable[[], dict[str, Any]],
        max_age: float = 5.0,
        wait: float = 2.0,
        close: Callable[[], None] | None = None,
    ) -> None:
        self._read = read
        self._max_age = max_age
        self._wait = wait
        self.close = close or (lambda: None)
        self._lock = threading.Lock()
        self._report: dict[str, Any] | None = None  # the last figures read
        self._read_at: float | None = None  # when they were read
        self._tried_at: float | None = None  # when the last read ended, well or not
        self._up = False
        self._reading: threading.Thread | None = None

    def _refresh(self) -> None:
        try:
            report: dict[str, Any] | None = self._read()
        except Exception as exc:  # a scrape must not fail because the store is away
            log.warning("metrics: backlog unreadable (%s)", type(exc).__name__)
            report = None
        with self._lock:
            now = time.monotonic()
            self._tried_at = now
            self._up = report is not None
            if report is not None:
                self._report, self._read_at = report, now
            self._reading = None

    def _report_now(self) -> tuple[dict[str, Any] | None, bool, float | None]:
        with self._lock:
            stale = self._tried_at is None or time.monotonic() - self._tried_at >= self._max_age
            if stale and self._reading is None:
                self._reading = threading.Thread(
                    target=self._refresh, name="proctorq-metrics-backlog", daemon=True
                )
                self._reading.start()
            reading = self._reading
        if reading is not None:
            reading.join(self._wait)
        with self._lock:
            age = None if self._read_at is None else time.monotonic() - self._read_at
            return self._report, self._up, age

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # nothing read at registration; the names are fixed and ours

    def collect(self) -> Iterator[GaugeMetricFamily]:
        report, up, age = self._report_now()
        yield GaugeMetricFamily(
            "proctorq_store_up",
            "1 if the last read of the backlog from the database succeeded, else 0",
            value=1.0 if up else 0.0,
        )
        if report is None:
            return
        yield GaugeMetricFamily(
            "proctorq_backlog_age_seconds",
            "How old the backlog figures are (they are stale while the database is away)",
            value=age or 0.0,
        )
        yield GaugeMetricFamily(
            "proctorq_broker_up",
            "1 if the broker answered the last read of queue depths, else 0",
            value=0.0 if report.get("queues") is None else 1.0,
        )
        states = GaugeMetricFamily(
            "proctorq_transitions", "Transition requests by state", labels=["state"]
        )
        for state in TransitionState:
            states.add_metric([state.value], report["transitions_by_state"].get(state, 0))
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
        yield from _event_metrics(report.get("events", {}))
        yield GaugeMetricFamily(
            "proctorq_failed",
            "Failed requests and follow-ups, waiting for an operator",
            value=report["failed_transitions"] + report["failed_follow_ups"],
        )


def _event_metrics(events: dict[str, dict[str, Any]]) -> Iterator[GaugeMetricFamily]:
    """Per event receiver: its events by state, and the age of the oldest pending one."""
    counts = GaugeMetricFamily(
        "proctorq_events",
        "Events per receiver: delivered, pending, failed",
        labels=["receiver", "state"],
    )
    oldest = GaugeMetricFamily(
        "proctorq_events_oldest_pending_seconds",
        "Age of the oldest event still pending, per receiver",
        labels=["receiver"],
    )
    for receiver, figures in events.items():
        for state in ("delivered", "pending", "failed"):
            counts.add_metric([receiver, state], figures[state])
        oldest.add_metric([receiver], figures["oldest_pending_seconds"] or 0.0)
    yield counts
    yield oldest


def exposition(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    return generate_latest(registry), CONTENT_TYPE_LATEST


def authorized(authorization: str | None, token: str) -> bool:
    """Whether the header carries the metrics token (compared in constant time)."""
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )
