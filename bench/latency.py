"""latency: accepted -> applied, p50 and p99, at half the measured maximum rate of the whole
system (API, workers, follow-ups running). Goal: p99 <= 50 ms.

Measured twice: with bench/load.py (requests sent flat out, then paced at half that rate), and
with wrk when it is installed (Debian's package `wrk`), a load generator that is not ours: flat
out for a few seconds, then each of 64 connections waiting after every answer so that the
whole comes to about half of wrk's own flat-out rate.

    .venv/bin/python -m bench.latency [--requests 3000] [--api-processes 1]

The API runs as the ingest row measures it and as `proctorq api` starts it by default: one
process. `--api-processes 2` is docker-compose's setting; on two cores it raises the flat-out
rate and takes CPU the appliers need at half of it (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from bench import load
from bench.common import machine, percentile, report, seed
from bench.ingest import BODY, wrk
from bench.system import (
    System,
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

TOKEN = bearer(9_000_001, staff=True)
API_PROCESSES = 1
PACED_CONNECTIONS = 16
WRK_FLAT_SECONDS = 3
WRK_PACED_CONNECTIONS = 64  # wrk waits whole milliseconds: a longer turn, a finer pace


@dataclass
class Run:
    """One load generator's flat-out and paced phases, and what the database recorded."""

    maximum: float  # accepted per second, flat out
    applied_rate: float  # meanwhile: first received to last applied
    offered: float  # paced: asked for
    answered: float  # paced: answered per second
    waits: list[float]  # paced: accepted -> applied, seconds
    pause: float
    paused_at: float

    def rows(self, generator: str) -> list[tuple[str, str]]:
        return [
            (f"{generator}: maximum rate, accepted per second (flat out)", f"{self.maximum:,.0f}"),
            (
                f"{generator}: ... applied per second meanwhile (first received to last applied)",
                f"{self.applied_rate:,.0f}",
            ),
            (
                f"{generator}: rate offered (half) / answered",
                f"{self.offered:,.0f} / {self.answered:,.0f} requests/s",
            ),
            (f"{generator}: accepted -> applied p50", f"{self.ms(50):.1f} ms"),
            (f"{generator}: accepted -> applied p99 (goal <= 50 ms)", f"{self.ms(99):.1f} ms"),
            (
                f"{generator}: longest time requests waited while none was applied",
                f"{self.pause * 1000:.0f} ms, {self.paused_at:.1f} s into the paced run",
            ),
        ]

    def ms(self, p: float) -> float:
        return percentile(self.waits, p) * 1000


def ids_of(answers: list[bytes]) -> list[int]:
    return [json.loads(a)["transition_id"] for a in answers if a.startswith(b"{")]


def requests_for(running: System, attempts: Sequence[int]) -> list[int]:
    with running.stack.engine.connect() as connection:
        return list(
            connection.scalars(select(Transition.id).where(Transition.attempt_id.in_(attempts)))
        )


def paced_outcome(running: System, ids: list[int]) -> tuple[list[float], float, float]:
    wait_applied(running.stack, ids)
    return applied_times(running.stack, ids), *longest_pause(running.stack, ids)


def by_load(running: System, n: int) -> Run:
    assert running.port is not None
    attempts, _ = seed(running.stack, 2 * n, Status.created)
    flat, paced = attempts[:n], attempts[n:]

    def requests(targets: list[int]) -> list[load.Request]:
        return [
            lambda a=a: load.post(f"/v1/attempts/{a}/transitions", BODY, TOKEN) for a in targets
        ]

    flat_out = load.run(running.port, requests(flat), 32, keep_answers=True)
    wait_applied(running.stack, ids_of(flat_out.answers))
    maximum = flat_out.statuses.get(202, 0) / flat_out.seconds
    applied_rate = n / span(running.stack, ids_of(flat_out.answers))
    wait_followed_up(running.stack)  # the paced run starts on a quiet system
    half = load.run(
        running.port, requests(paced), PACED_CONNECTIONS, rate=maximum / 2, keep_answers=True
    )
    waits, pause, paused_at = paced_outcome(running, ids_of(half.answers))
    return Run(maximum, applied_rate, maximum / 2, half.rate, waits, pause, paused_at)


def by_wrk(running: System, n: int) -> Run:
    assert running.api is not None
    wait_followed_up(running.stack)
    flat, _ = seed(running.stack, 3 * n, Status.created)
    flat_out = wrk(running.api, "proctorq", flat, TOKEN, WRK_FLAT_SECONDS)
    flat_ids = requests_for(running, flat)
    wait_applied(running.stack, flat_ids)
    applied_rate = len(flat_ids) / span(running.stack, flat_ids)
    wait_followed_up(running.stack)
    half = flat_out.rate / 2
    seconds = max(3, round(n / half))
    paced, _ = seed(running.stack, int(half * seconds * 1.5), Status.created)
    # Each connection's turn is an answer, then a wait of its share of the time: the answer
    # (a few ms) makes the rate a little lower than asked, which the report shows.
    sent = wrk(
        running.api,
        "proctorq",
        paced,
        TOKEN,
        seconds,
        connections=WRK_PACED_CONNECTIONS,
        pace_ms=round(WRK_PACED_CONNECTIONS / half * 1000),
    )
    waits, pause, paused_at = paced_outcome(running, requests_for(running, paced))
    return Run(flat_out.rate, applied_rate, half, sent.rate, waits, pause, paused_at)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--api-processes", type=int, default=API_PROCESSES)
    args = parser.parse_args()
    with system(api_processes=args.api_processes) as running:
        ours = by_load(running, args.requests)
        theirs = by_wrk(running, args.requests) if shutil.which("wrk") else None
    report(
        f"latency: accepted -> applied at half the maximum rate, {args.requests} paced requests",
        [
            ("machine", machine()),
            ("API processes", str(args.api_processes)),
            *ours.rows("bench/load.py"),
            *(theirs.rows("wrk") if theirs else [("wrk", "not installed (apt-get install wrk)")]),
        ],
    )


if __name__ == "__main__":
    main()
