"""The whole system for the benchmarks that need it: API, workers per queue group, SMTP sink,
the LMS's credit endpoint."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from sqlalchemy import func, select

from bench.common import environment, wait_until
from bench.ingest import Server, server
from bench.smtp_sink import SMTPSink
from proctoring.db import Wakeup
from proctoring.models import Outbox, OutboxState, Transition, TransitionState
from tests.support.processes import Stack
from tests.support.servers import HTTPEndpoint
from workers.publisher import CoalescingPublisher


@dataclass
class System:
    stack: Stack
    smtp: SMTPSink
    lms: HTTPEndpoint
    api: Server | None

    @property
    def port(self) -> int | None:
        return None if self.api is None else self.api.port


@contextmanager
def system(
    *,
    slow_seconds: float = 0.0,
    api: bool = True,
    api_processes: int = 2,
    followup_threads: int = 32,
) -> Iterator[System]:
    """Workers as in production: one group applies, one does the follow-ups (threads, since
    they wait on SMTP and the LMS), and beat; the API in ``api_processes`` processes. The SMTP
    server and the LMS answer after ``slow_seconds``."""
    with ExitStack() as stack_of:
        smtp = stack_of.enter_context(SMTPSink(delay=slow_seconds))
        lms = stack_of.enter_context(HTTPEndpoint(delay=slow_seconds))
        stack = stack_of.enter_context(
            environment(PROCTORQ_SMTP_URL=smtp.url, PROCTORQ_CREDIT_WEBHOOK_URL=lms.url)
        )
        stack.start_worker("apply", queues="transitions,maintenance", concurrency=2)
        stack.start_worker(
            "followups", queues="credit,email", concurrency=followup_threads, pool="threads"
        )
        stack.start_beat()  # the sweeps and the relay, every five seconds, as in production
        served = stack_of.enter_context(server(stack, api_processes)) if api else None
        yield System(stack, smtp, lms, served)


def publish_coalesced(stack: Stack, transition_ids: Sequence[int]) -> None:
    """As the API's publisher does when requests come faster than it sends."""
    publisher = CoalescingPublisher(stack.publisher)
    for transition_id in transition_ids:
        publisher([Wakeup("apply", transition_id)])
    publisher.flush(120)


def applied_times(stack: Stack, ids: Sequence[int]) -> list[float]:
    """Seconds from received to applied, per transition, as the database recorded them."""
    with stack.engine.connect() as connection:
        rows = connection.execute(
            select(Transition.received_at, Transition.applied_at).where(
                Transition.id.in_(ids), Transition.state != TransitionState.pending
            )
        ).all()
    return [(applied - received).total_seconds() for received, applied in rows]


def wait_followed_up(stack: Stack, timeout: float = 600) -> None:
    """Until no follow-up is pending."""

    def done() -> bool:
        with stack.engine.connect() as connection:
            left = connection.execute(
                select(Outbox.id).where(Outbox.state == OutboxState.pending).limit(1)
            ).first()
        return left is None

    wait_until(done, timeout=timeout, interval=0.1, what="every follow-up done")


def span(stack: Stack, ids: Sequence[int]) -> float:
    """Seconds from the first of these requests received to the last applied."""
    with stack.engine.connect() as connection:
        first, last = connection.execute(
            select(func.min(Transition.received_at), func.max(Transition.applied_at)).where(
                Transition.id.in_(ids)
            )
        ).one()
    return float((last - first).total_seconds())


def longest_pause(stack: Stack, ids: Sequence[int]) -> tuple[float, float]:
    """The longest time requests waited while the workers applied none of them: seconds, and
    when it began (seconds after the first request was received)."""
    with stack.engine.connect() as connection:
        rows = connection.execute(
            select(Transition.received_at, Transition.applied_at).where(Transition.id.in_(ids))
        ).all()
    # Per moment something was applied, the earliest reception among what it applied.
    earliest: dict[dt.datetime, dt.datetime] = {}
    for received, applied in rows:
        if applied is not None:
            earliest[applied] = min(received, earliest.get(applied, received))
    if not earliest:
        return 0.0, 0.0
    first = min(received for received, _ in rows)
    longest, began = 0.0, 0.0
    for before, moment in itertools.pairwise(sorted(earliest)):
        start = max(before, earliest[moment])
        if (idle := (moment - start).total_seconds()) > longest:
            longest, began = idle, (start - first).total_seconds()
    return longest, began


def wait_applied(stack: Stack, ids: Sequence[int], timeout: float = 600) -> float:
    began = time.monotonic()

    def done() -> bool:
        with stack.engine.connect() as connection:
            left = connection.execute(
                select(Transition.id)
                .where(Transition.id.in_(ids), Transition.state == TransitionState.pending)
                .limit(1)
            ).first()
        return left is None

    wait_until(done, timeout=timeout, interval=0.02, what="every transition applied")
    return time.monotonic() - began
