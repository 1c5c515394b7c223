"""slow dependencies: with the SMTP server and the credit webhook each answering after 1 s,
the apply rate stays >= 0.9 of the fast case and the API's p99 does not move.

Workers as in production: one group applies transitions, another (threads) does the
follow-ups that wait on SMTP and the LMS; a slow mail server then delays e-mails, not status
changes.

    .venv/bin/python -m bench.slow_deps [--transitions 3000] [--delay 1.0]
"""

from __future__ import annotations

import argparse

from bench import load
from bench.common import machine, percentile, record, report, seed
from bench.ingest import BODY
from bench.system import publish_coalesced, system, wait_applied
from proctoring.statuses import Status
from tests.support.tokens import bearer


def measure(n: int, delay: float) -> tuple[float, float, float]:
    """(transitions applied per second, API p50, API p99) with dependencies this slow."""
    token = bearer(9_000_001, staff=True)
    with system(slow_seconds=delay) as running:
        assert running.port is not None
        attempts, _ = seed(running.stack, n, Status.started)
        ids = record(running.stack, attempts, Status.submitted)  # each sends an e-mail
        publish_coalesced(running.stack, ids)
        seconds = wait_applied(running.stack, ids)
        # The API meanwhile: follow-ups of the run above are still waiting on SMTP and LMS.
        fresh, _ = seed(running.stack, 600, Status.created)
        answers = load.run(
            running.port,
            [lambda a=a: load.post(f"/v1/attempts/{a}/transitions", BODY, token) for a in fresh],
            8,
            rate=50,
        )
    return n / seconds, percentile(answers.latencies, 50), percentile(answers.latencies, 99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transitions", type=int, default=3000)
    parser.add_argument("--delay", type=float, default=1.0)
    args = parser.parse_args()
    fast_rate, fast_p50, fast_p99 = measure(args.transitions, 0.0)
    slow_rate, slow_p50, slow_p99 = measure(args.transitions, args.delay)
    report(
        f"slow dependencies: SMTP and credit webhook answering after {args.delay:g} s",
        [
            ("machine", machine()),
            ("applied per second, fast dependencies (baseline)", f"{fast_rate:,.0f}"),
            ("applied per second, slow dependencies", f"{slow_rate:,.0f}"),
            ("ratio (goal >= 0.9)", f"{slow_rate / fast_rate:.2f}"),
            (
                "API p50 / p99 at 50 req/s, fast",
                f"{fast_p50 * 1000:.1f} / {fast_p99 * 1000:.1f} ms",
            ),
            (
                "API p50 / p99 at 50 req/s, slow",
                f"{slow_p50 * 1000:.1f} / {slow_p99 * 1000:.1f} ms",
            ),
        ],
    )


if __name__ == "__main__":
    main()
