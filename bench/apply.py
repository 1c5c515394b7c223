"""apply: transitions fully done per second (status applied, credit row written, e-mail accepted
by a local SMTP server), against a no-op task of the same Celery app on the same broker, with
the same worker (2 pool processes). Goal: ratio >= 0.5.

With --events, the same rate with one event receiver configured (a local HTTP server; the
worker consumes the events queue too) against none, in the same run. Goal: ratio >= 0.9.

    .venv/bin/python -m bench.apply [--transitions 5000] [--events]
"""

from __future__ import annotations

import argparse
import time
import uuid

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
    n: int, smtp: SMTPSink, coalesced: bool, receiver: HTTPEndpoint | None = None
) -> tuple[float, dict[str, int]]:
    env = {"PROCTORQ_SMTP_URL": smtp.url}
    worker = dict(WORKER)
    if receiver is not None:
        env["PROCTORQ_EVENT_WEBHOOKS"] = receivers_setting(("lms", receiver))
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
    args = parser.parse_args()
    n = args.transitions
    if args.events:
        events_cost(n)
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


def events_cost(n: int) -> None:
    with SMTPSink() as smtp, HTTPEndpoint() as receiver:
        without, _ = ours(n, smtp, coalesced=True)
        with_events, _ = ours(n, smtp, coalesced=True, receiver=receiver)
        taken = len(receiver.received)
    report(
        f"apply with events: {n} transitions, worker -c {WORKER['concurrency']}",
        [
            ("machine", machine()),
            ("transitions fully done per second, no receiver", f"{without:,.0f}"),
            ("the same, one event receiver", f"{with_events:,.0f}"),
            ("ratio (goal >= 0.9)", f"{with_events / without:.2f}"),
            ("events taken by the receiver by then", str(taken)),
        ],
    )


if __name__ == "__main__":
    time.sleep(0)
    main()
