"""paced: the latency run taken apart. The whole system as `bench/run latency` starts it, one
warm-up, then requests at a fixed rate for a fixed time; reported per second of the run:
accepted -> applied p50 and p99; and for the whole run: the CPU each part used (from /proc),
the apply messages Redis took, and the PostgreSQL indexes that were read most.

    .venv/bin/python -m bench.paced [--rate 700] [--seconds 10] [--stale-statistics]
        [--api-processes 1]

`--stale-statistics` leaves the seeded tables without planner statistics, as a table filled
in a second is until autovacuum has analyzed it.
"""

from __future__ import annotations

import argparse
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from sqlalchemy import select, text

from bench import load
from bench.common import machine, percentile, report, seed
from bench.ingest import BODY, cpu_seconds
from bench.latency import API_PROCESSES, PACED_CONNECTIONS, TOKEN, ids_of
from bench.system import System, system, wait_applied, wait_followed_up
from proctoring.models import Transition
from proctoring.statuses import Status
from tests.support.databases import REDIS_URL

WARM_UP = 500
# Index entries read per index, from PostgreSQL's statistics of the bench database.
_INDEX_READS = text("SELECT relname || '.' || indexrelname, idx_tup_read FROM pg_stat_user_indexes")


def _postmaster() -> int:
    """PostgreSQL's first process: its descendants are every backend."""
    found = subprocess.run(
        ["pgrep", "-x", "-o", "postgres"], check=True, capture_output=True, text=True
    )
    return int(found.stdout.split()[0])


def _parts(running: System) -> dict[str, list[int]]:
    """The processes of each part: their CPU is counted with their descendants'."""
    assert running.api is not None
    workers = {p.name: p.popen.pid for p in running.stack.processes}
    n = running.api.processes
    return {
        f"API ({n} process{'es' if n > 1 else ''})": [running.api.pid],
        "applying worker (2 pool processes)": [workers["apply"]],
        "follow-up worker": [workers["followups"]],
        "beat": [workers["beat"]],
        "PostgreSQL (all backends)": [_postmaster()],
    }


@contextmanager
def _counted(running: System) -> Iterator[dict[str, float]]:
    """CPU seconds per part, apply messages sent and index entries read while inside."""
    parts = _parts(running)
    broker = redis.Redis.from_url(REDIS_URL)
    with running.stack.engine.connect() as connection:
        reads: dict[str, int] = dict(connection.execute(_INDEX_READS).all())
    before = {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in parts.items()}
    broker.config_resetstat()
    counts: dict[str, float] = {}
    yield counts
    for name, pids in parts.items():
        counts[name] = sum(cpu_seconds(pid) for pid in pids) - before[name]
    counts["messages"] = broker.info("commandstats").get("cmdstat_lpush", {}).get("calls", 0)
    with running.stack.engine.connect() as connection:
        for index, read in connection.execute(_INDEX_READS):
            counts[f"index {index}"] = read - reads.get(index, 0)


def _per_second(running: System, ids: list[int]) -> list[tuple[str, str]]:
    with running.stack.engine.connect() as connection:
        rows = connection.execute(
            select(Transition.received_at, Transition.applied_at).where(Transition.id.in_(ids))
        ).all()
    first = min(received for received, _ in rows)
    waits: dict[int, list[float]] = defaultdict(list)
    for received, applied in rows:
        waits[int((received - first).total_seconds())].append((applied - received).total_seconds())
    return [
        (
            f"second {second}: accepted -> applied p50 / p99",
            f"{percentile(w, 50) * 1000:.1f} / {percentile(w, 99) * 1000:.1f} ms "
            f"({len(w)} requests)",
        )
        for second, w in sorted(waits.items())
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=700)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--stale-statistics", action="store_true")
    parser.add_argument("--api-processes", type=int, default=API_PROCESSES)
    args = parser.parse_args()
    n = int(args.rate * args.seconds)
    with system(api_processes=args.api_processes) as running:
        assert running.port is not None
        attempts, _ = seed(
            running.stack, n + WARM_UP, Status.created, analyzed=not args.stale_statistics
        )

        def requests(targets: list[int]) -> list[load.Request]:
            return [
                lambda a=a: load.post(f"/v1/attempts/{a}/transitions", BODY, TOKEN) for a in targets
            ]

        warm = load.run(running.port, requests(attempts[n:]), PACED_CONNECTIONS, keep_answers=True)
        wait_applied(running.stack, ids_of(warm.answers))
        wait_followed_up(running.stack)
        with _counted(running) as counts:
            paced = load.run(
                running.port,
                requests(attempts[:n]),
                PACED_CONNECTIONS,
                rate=args.rate,
                keep_answers=True,
            )
        ids = ids_of(paced.answers)
        wait_applied(running.stack, ids)
        rows = _per_second(running, ids)
    cpu = [
        (f"CPU, % of one core: {name}", f"{seconds / paced.seconds * 100:.0f}%")
        for name, seconds in counts.items()
        if not name.startswith(("index", "messages"))
    ]
    indexes = sorted(
        ((name, read) for name, read in counts.items() if name.startswith("index")),
        key=lambda item: -item[1],
    )[:4]
    report(
        f"paced: {n} requests at {args.rate:.0f}/s"
        + (", tables without statistics" if args.stale_statistics else ""),
        [
            ("machine", machine()),
            ("answered per second", f"{paced.rate:,.0f}"),
            *rows,
            *cpu,
            ("messages sent to the broker (LPUSH)", f"{counts['messages']:,.0f}"),
            *((f"{name} entries read", f"{read:,.0f}") for name, read in indexes),
        ],
    )


if __name__ == "__main__":
    main()
