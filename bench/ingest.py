"""ingest: transition requests accepted per second at the API (token checked, access decided,
row committed before the answer, wake-up published), against two routes of the same app on
the same server: a bare route that validates the same body and answers 202, and a route that
only publishes a Celery message. Goals: >= 0.3 x the bare route, >= 1.5 x publish-only, and
<= 1 ms of the API process's CPU per accepted request.

Each route is loaded twice: by bench/load.py, and by wrk (Debian's package `wrk`) when it is
installed, a load generator that is not ours.

    .venv/bin/python -m bench.ingest [--requests 20000] [--workers 1] [--seconds 10]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis
from sqlalchemy import func, select

from bench import load
from bench.common import environment, machine, percentile, report, seed
from proctoring.models import Transition
from proctoring.statuses import Status
from tests.support.processes import Stack, descendants, wait_until
from tests.support.servers import free_port
from tests.support.tokens import bearer

BODY = json.dumps({"to_status": "started", "acting_for_learner": True}).encode()
ROUTES = {
    "bare": "/bench/bare/{}/transitions",
    "publish-only": "/bench/publish/{}/transitions",
    "proctorq": "/v1/attempts/{}/transitions",
}


@dataclass
class Server:
    port: int
    pid: int
    processes: int

    def cpu_seconds(self) -> float:
        """User and system CPU of the server and its children so far, from /proc."""
        return cpu_seconds(self.pid)


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process and its descendants so far, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for one in {pid, *descendants(pid)}:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


@contextmanager
def server(stack: Stack, workers: int) -> Iterator[Server]:
    """The app as `proctorq api --workers N` runs it: uvicorn (uvloop, httptools, no access
    log) in N processes with a listening socket each (api/serve.py)."""
    port = free_port()
    log = (stack.folder / "uvicorn.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "api.serve",
            "--app",
            "bench.ingest_app:app_factory",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=stack.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=stack.folder,
    )
    try:
        wait_until(lambda: _healthy(port), timeout=60, what="uvicorn")
        yield Server(port, process.pid, workers)
    finally:
        process.terminate()
        process.wait(30)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def published(stack: Stack) -> tuple[int, int]:
    """Messages waiting in the transitions queue, and the transition ids they carry."""
    client = redis.Redis.from_url(stack.broker_url)
    messages = client.lrange("transitions", 0, -1)
    ids = sum(len(json.loads(base64.b64decode(json.loads(m)["body"]))[0][0]) for m in messages)
    return len(messages), ids


@dataclass
class Phase:
    """One route under one load generator."""

    accepted: int  # answered 2xx
    answered: int
    seconds: float
    cpu: float  # of the API's processes
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds

    @property
    def cpu_ms(self) -> float:
        return self.cpu / max(self.accepted, 1) * 1000


def ours(api: Server, route: str, targets: list[int], token: dict[str, str], n: int) -> Phase:
    """bench/load.py: n requests over 32 keep-alive connections, flat out."""
    path = ROUTES[route]
    before = api.cpu_seconds()
    result = load.run(
        api.port, [lambda a=a: load.post(path.format(a), BODY, token) for a in targets[:n]], 32
    )
    cpu = api.cpu_seconds() - before
    accepted = sum(count for status, count in result.statuses.items() if status < 300)
    return Phase(
        accepted,
        len(result.latencies),
        result.seconds,
        cpu,
        percentile(result.latencies, 50) * 1000,
        percentile(result.latencies, 99) * 1000,
    )


# Each of wrk's two threads goes through the attempts from its own half, and starts again at
# the end; with BENCH_PACE_MS, each connection waits that long after an answer before it sends
# again (wrk's `delay`). `done` prints one line.
WRK_SCRIPT = """
local ids = {}
for line in io.lines(os.getenv("BENCH_ATTEMPTS")) do ids[#ids + 1] = line end
local before, after = os.getenv("BENCH_BEFORE"), os.getenv("BENCH_AFTER")
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("BENCH_AUTHORIZATION")
local pace = tonumber(os.getenv("BENCH_PACE_MS"))
if pace > 0 then function delay() return pace end end
local threads = 0
function setup(thread)
  thread:set("offset", threads * math.floor(#ids / 2)); threads = threads + 1
end
local n = 0
function request()
  n = n + 1
  return wrk.format(nil, before .. ids[((offset or 0) + n) % #ids + 1] .. after)
end
function done(summary, latency, requests)
  io.write(string.format("BENCH %d %d %d %d %d\\n", summary.requests, summary.duration,
    summary.errors.status, latency:percentile(50), latency:percentile(99)))
end
"""


def wrk(
    api: Server,
    route: str,
    targets: list[int],
    token: dict[str, str],
    seconds: int,
    *,
    connections: int = 32,
    pace_ms: int = 0,
) -> Phase:
    """wrk: 2 threads, ``connections`` connections, for ``seconds``; flat out, or each
    connection waiting ``pace_ms`` after every answer."""
    before, after = ROUTES[route].split("{}")
    with tempfile.TemporaryDirectory() as folder:
        script, attempts = Path(folder) / "post.lua", Path(folder) / "attempts"
        script.write_text(WRK_SCRIPT)
        attempts.write_text("\n".join(map(str, targets)) + "\n")
        env = {
            **os.environ,
            "BENCH_ATTEMPTS": str(attempts),
            "BENCH_BEFORE": before,
            "BENCH_AFTER": after,
            "BENCH_BODY": BODY.decode(),
            "BENCH_AUTHORIZATION": token["Authorization"],
            "BENCH_PACE_MS": str(pace_ms),
        }
        cpu_before = api.cpu_seconds()
        out = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{connections}",
                f"-d{seconds}s",
                "-s",
                str(script),
                f"http://127.0.0.1:{api.port}",
            ],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout
        cpu = api.cpu_seconds() - cpu_before
    line = next(line for line in out.splitlines() if line.startswith("BENCH "))
    requests, micros, errors, p50, p99 = map(int, line.split()[1:])
    return Phase(requests - errors, requests, micros / 1e6, cpu, p50 / 1000, p99 / 1000)


def rows(phases: dict[str, Phase], generator: str) -> list[tuple[str, str]]:
    bare, publish, mine = phases["bare"], phases["publish-only"], phases["proctorq"]
    return [
        (
            f"{generator}: bare / publish-only / proctorq, answered 2xx per second",
            f"{bare.rate:,.0f} / {publish.rate:,.0f} / {mine.rate:,.0f}",
        ),
        (
            f"{generator}: proctorq / bare (goal >= 0.3)",
            f"{mine.rate / bare.rate:.2f}",
        ),
        (
            f"{generator}: proctorq / publish-only (goal >= 1.5)",
            f"{mine.rate / publish.rate:.2f}",
        ),
        (
            f"{generator}: API CPU per request, ms: bare / publish-only / proctorq (goal <= 1)",
            f"{bare.cpu_ms:.2f} / {publish.cpu_ms:.2f} / {mine.cpu_ms:.2f}",
        ),
        (
            f"{generator}: answer p50 / p99, ms: bare / publish-only / proctorq",
            " / ".join(f"{p.p50_ms:.1f}, {p.p99_ms:.1f}" for p in (bare, publish, mine)),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20000, help="per route, bench/load.py")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--seconds", type=int, default=10, help="per route, wrk")
    args = parser.parse_args()
    n = args.requests
    has_wrk = shutil.which("wrk") is not None
    # No worker takes the messages here, so the first apply message would stay in the queue
    # and the API would send no other (workers/publisher.py, DrainWaiting). With batches of 0
    # it sends every wake-up, as it does when the workers keep up: the dearer case.
    with environment(PROCTORQ_APPLY_BATCH_SIZE="0") as stack:
        attempts, _ = seed(stack, 2000, Status.created)
        token = bearer(9_000_001, staff=True)
        targets = load.shuffled([attempts[i % len(attempts)] for i in range(n)])
        with server(stack, args.workers) as api:
            warm = {route: ours(api, route, targets, token, 2000) for route in ROUTES}
            by_ours = {route: ours(api, route, targets, token, n) for route in ROUTES}
            by_wrk = (
                {route: wrk(api, route, attempts, token, args.seconds) for route in ROUTES}
                if has_wrk
                else {}
            )
        with stack.engine.connect() as connection:
            recorded = connection.scalar(select(func.count()).select_from(Transition)) or 0
        messages, carried = published(stack)
    accepted = sum(p["proctorq"].accepted for p in (warm, by_ours, by_wrk) if p)
    report(
        f"ingest: uvicorn --workers {args.workers}; bench/load.py {n} requests per route over "
        f"32 connections; wrk -t2 -c32 -d{args.seconds}s per route",
        [
            ("machine", machine()),
            *rows(by_ours, "bench/load.py"),
            *(rows(by_wrk, "wrk") if by_wrk else [("wrk", "not installed (apt-get install wrk)")]),
            ("proctorq requests accepted in all / rows recorded", f"{accepted} / {recorded}"),
            ("messages published / ids they carry", f"{messages} / {carried}"),
        ],
    )


if __name__ == "__main__":
    main()
