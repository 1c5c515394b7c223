"""apply: transitions fully done per second (status applied, credit row written, e-mail accepted
by a local SMTP server), against a no-op task of the same Celery app on the same broker, with
the same worker (2 pool processes). Goal: ratio >= 0.5.

With --events, the same rate with one event receiver configured (a local HTTP server) against
none, alternately, in the same run: what recording the events costs the apply rate (goal: ratio
>= 0.9), with the events delivered afterwards by a worker of their own (as docker-compose.yml
runs them) and timed apart; and, for comparison, the rate when the same worker delivers them
meanwhile on the same cores.

    .venv/bin/python -m bench.apply [--transitions 5000] [--events [--rounds 3]]
"""

from __future__ import annotations

import argparse
import time
import uuid
from statistics import median
from typing import Any

import redis
from sqlalchemy import text

from bench.common import (
    counts,
    environment,
    machine,
    publish_one_each,
    record,
    report,
    seed,
    start_workers_and_time,
)
from bench.smtp_sink import SMTPSink
from proctoring.db import Wakeup
from proctoring.statuses import Status
from tests.support.events import receivers_setting
from tests.support.processes import wait_until
from tests.support.servers import HTTPEndpoint
from workers import routing
from workers.publisher import CoalescingPublisher

WORKER = {"queues": "transitions,credit,email", "concurrency": 2, "pool": "prefork"}


def baseline(n: int) -> float:
    with environment() as stack:
        key = f"bench-noop-{uuid.uuid4().hex}"
        counter = redis.Redis.from_url(stack.broker_url)
        with stack.app.producer_or_acquire() as producer:
            for _ in range(n):
                stack.app.send_task(
                    "proctorq.bench_noop",
                    args=[stack.broker_url, key],
                    queue="transitions",
                    producer=producer,
                )
        seconds = start_workers_and_time(
            stack,
            lambda: int(counter.get(key) or 0) >= n,
            extra=["--include", "bench.noop"],
            **WORKER,
        )
        return n / seconds


def ours(
    n: int,
    smtp: SMTPSink,
    coalesced: bool,
    receiver: HTTPEndpoint | None = None,
    alongside: bool = True,
) -> tuple[float, dict[str, int]]:
    """Transitions fully done per second. With a receiver, its events are recorded; they are
    delivered by the same worker meanwhile (``alongside``), or by a worker of their own
    started once the transitions are done, which is then timed on its own."""
    env = {"PROCTORQ_SMTP_URL": smtp.url}
    worker = dict(WORKER)
    if receiver is not None:
        env["PROCTORQ_EVENT_WEBHOOKS"] = receivers_setting(("lms", receiver))
        if alongside:
            worker["queues"] = f"{WORKER['queues']},events"
    with environment(**env) as stack:
        attempts, _ = seed(stack, n, Status.started)
        transition_ids = record(stack, attempts, Status.submitted)
        if coalesced:
            # As the API's publisher does when requests come faster than it sends.
            publisher = CoalescingPublisher(stack.publisher)
            for transition_id in transition_ids:
                publisher([Wakeup("apply", transition_id)])
            publisher.flush(60)
        else:
            publish_one_each(
                stack, routing.APPLY_TRANSITIONS, [[i] for i in transition_ids], "transitions"
            )
        before = smtp.accepted

        def done() -> bool:
            c = counts(stack)
            return c["applied"] >= n and c["credit"] >= n and smtp.accepted - before >= n

        seconds = start_workers_and_time(stack, done, **worker)
        final = counts(stack)
        final["emails_accepted"] = smtp.accepted - before
        if receiver is not None:
            final["events"] = _events(stack, "")
            if not alongside:
                began = time.monotonic()
                stack.start_worker("events", queues="events", concurrency=2, pool="prefork")
                wait_until(
                    lambda: _events(stack, "AND state = 'pending'") == 0,
                    timeout=600,
                    interval=0.05,
                    what="the events",
                )
                final["delivery_ms"] = round(1000 * (time.monotonic() - began))
        with stack.engine.connect() as connection:
            final["duplicates"] = (
                connection.scalar(
                    text(
                        "SELECT count(*) FROM (SELECT transition_id FROM attempt_history "
                        "GROUP BY transition_id HAVING count(*) > 1) AS twice"
                    )
                )
                or 0
            )
            final["slowest_ms"] = round(
                1000
                * (
                    connection.scalar(
                        text(
                            "SELECT max(extract(epoch FROM applied_at - received_at)) "
                            "FROM transitions"
                        )
                    )
                    or 0
                )
            )
        return n / seconds, final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transitions", type=int, default=5000)
    parser.add_argument("--events", action="store_true", help="the cost of one event receiver")
    parser.add_argument("--rounds", type=int, default=3, help="with --events: rounds (median)")
    args = parser.parse_args()
    n = args.transitions
    if args.events:
        events_cost(n, args.rounds)
        return
    with SMTPSink() as smtp:
        noop_rate = baseline(n)
        rate, final = ours(n, smtp, coalesced=True)
        worst, _ = ours(n, smtp, coalesced=False)
    report(
        f"apply: {n} transitions, worker -Q {WORKER['queues']} -c {WORKER['concurrency']}",
        [
            ("machine", machine()),
            ("no-op tasks per second (baseline)", f"{noop_rate:,.0f}"),
            ("transitions fully done per second", f"{rate:,.0f}"),
            ("ratio (goal >= 0.5)", f"{rate / noop_rate:.2f}"),
            ("  the same, one message per transition", f"{worst:,.0f}"),
            ("  its ratio", f"{worst / noop_rate:.2f}"),
            ("applied / credit rows", f"{final['applied']} / {final['credit']}"),
            ("e-mails accepted by SMTP / expected", f"{final['emails_accepted']} / {n}"),
            ("transitions applied twice", str(final["duplicates"])),
            ("slowest request, received -> applied", f"{final['slowest_ms']} ms"),
        ],
    )


def _events(stack: Any, where: str) -> int:
    with stack.engine.connect() as connection:
        return int(
            connection.scalar(text(f"SELECT count(*) FROM outbox WHERE kind = 'event' {where}"))
            or 0
        )


def events_cost(n: int, rounds: int) -> None:
    """Without a receiver, and with one, alternately, ``rounds`` times each: the median."""
    without: list[float] = []
    recorded: list[float] = []
    alongside: list[float] = []
    delivery: list[float] = []
    with SMTPSink() as smtp:
        for _ in range(rounds):
            without.append(ours(n, smtp, coalesced=True)[0])
            with HTTPEndpoint() as receiver:
                rate, final = ours(n, smtp, coalesced=True, receiver=receiver, alongside=False)
                recorded.append(rate)
                delivery.append(final["events"] / (final["delivery_ms"] / 1000))
                assert len(receiver.received) >= final["events"], "an event was not delivered"
            with HTTPEndpoint() as receiver:
                alongside.append(
                    ours(n, smtp, coalesced=True, receiver=receiver, alongside=True)[0]
                )
    base, rec, both = median(without), median(recorded), median(alongside)
    report(
        f"apply with events: {n} transitions, worker -c {WORKER['concurrency']}, "
        f"median of {rounds} rounds",
        [
            ("machine", machine()),
            ("transitions fully done per second, no receiver", f"{base:,.0f}"),
            ("the same, one receiver, its events recorded", f"{rec:,.0f}"),
            ("ratio: what events cost the apply rate (goal >= 0.9)", f"{rec / base:.2f}"),
            ("events then delivered per second, worker -Q events -c 2", f"{median(delivery):,.0f}"),
            ("the same worker delivering them meanwhile, on these cores", f"{both:,.0f}"),
            ("  its ratio", f"{both / base:.2f}"),
        ],
    )


if __name__ == "__main__":
    time.sleep(0)
    main()
