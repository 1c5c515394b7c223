"""latency: accepted -> applied, p50 and p99, at half the measured maximum rate of the whole
system (API, workers, follow-ups running). Goal: p99 <= 50 ms.

    .venv/bin/python -m bench.latency [--requests 3000]
"""

from __future__ import annotations

import argparse
import json

from sqlalchemy import select

from bench import load
from bench.common import machine, percentile, report, seed
from bench.ingest import BODY
from bench.system import (
    applied_times,
    longest_pause,
    span,
    system,
    wait_applied,
    wait_followed_up,
)
from proctoring.models import Transition
from proctoring.statuses import Status
from tests.support.tokens import bearer


def ids_of(answers: list[bytes]) -> list[int]:
    return [json.loads(a)["transition_id"] for a in answers if a.startswith(b"{")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    n = args.requests
    token = bearer(9_000_001, staff=True)
    with system() as running:
        assert running.port is not None
        attempts, _ = seed(running.stack, 2 * n, Status.created)
        flat, paced_targets = attempts[:n], attempts[n:]

        def requests(targets: list[int]) -> list[load.Request]:
            return [
                lambda a=a: load.post(f"/v1/attempts/{a}/transitions", BODY, token) for a in targets
            ]

        flat_out = load.run(running.port, requests(flat), 32, keep_answers=True)
        wait_applied(running.stack, ids_of(flat_out.answers))
        maximum = flat_out.statuses.get(202, 0) / flat_out.seconds
        applied_rate = n / span(running.stack, ids_of(flat_out.answers))
        wait_followed_up(running.stack)  # the paced run starts on a quiet system
        half = load.run(
            running.port, requests(paced_targets), 16, rate=maximum / 2, keep_answers=True
        )
        ids = ids_of(half.answers)
        wait_applied(running.stack, ids)
        waits = applied_times(running.stack, ids)
        pause, paused_at = longest_pause(running.stack, ids)
        with running.stack.engine.connect() as connection:
            states = dict(
                connection.execute(
                    select(Transition.state, Transition.id).where(Transition.id.in_(ids[:1]))
                ).all()
            )
    report(
        f"latency: accepted -> applied, {len(ids)} requests at half the maximum rate",
        [
            ("machine", machine()),
            ("maximum rate, accepted per second (flat out)", f"{maximum:,.0f}"),
            (
                "... applied per second meanwhile (first received to last applied)",
                f"{applied_rate:,.0f}",
            ),
            ("rate offered (half)", f"{maximum / 2:,.0f} requests/s, {half.rate:,.0f} answered/s"),
            ("accepted -> applied p50", f"{percentile(waits, 50) * 1000:.1f} ms"),
            ("accepted -> applied p99 (goal <= 50 ms)", f"{percentile(waits, 99) * 1000:.1f} ms"),
            (
                "answer p50 / p99",
                f"{percentile(half.latencies, 50) * 1000:.1f} / "
                f"{percentile(half.latencies, 99) * 1000:.1f} ms",
            ),
            (
                "longest time requests waited while none was applied",
                f"{pause * 1000:.0f} ms, {paused_at:.1f} s into the paced run",
            ),
            ("final states seen", ", ".join(sorted(str(s) for s in states))),
        ],
    )


if __name__ == "__main__":
    main()
