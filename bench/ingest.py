"""ingest: transition requests accepted per second at the API (token checked, access decided,
row committed, message published), against a bare route of the same app that validates the
same body and answers 202, under the same server settings. Goal: ratio >= 0.25.

    .venv/bin/python -m bench.ingest [--requests 20000] [--workers 2]
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import redis
from sqlalchemy import func, select

from bench import load
from bench.common import environment, machine, report, seed
from proctoring.models import Transition
from proctoring.statuses import Status
from tests.support.processes import Stack, wait_until
from tests.support.servers import free_port
from tests.support.tokens import bearer

BODY = json.dumps({"to_status": "started", "acting_for_learner": True}).encode()


@contextmanager
def server(stack: Stack, workers: int) -> Iterator[int]:
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
        yield port
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    n = args.requests
    with environment() as stack:
        attempts, _ = seed(stack, 2000, Status.created)
        token = bearer(9_000_001, staff=True)
        targets = load.shuffled([attempts[i % len(attempts)] for i in range(n)])
        with server(stack, args.workers) as port:
            warm = [
                lambda a=a: load.post(f"/bench/bare/{a}/transitions", BODY, token)
                for a in targets[:2000]
            ]
            load.run(port, warm, args.connections)  # warm up both routes' code paths
            bare = load.run(
                port,
                [
                    lambda a=a: load.post(f"/bench/bare/{a}/transitions", BODY, token)
                    for a in targets
                ],
                args.connections,
            )
            ours = load.run(
                port,
                [
                    lambda a=a: load.post(f"/v1/attempts/{a}/transitions", BODY, token)
                    for a in targets
                ],
                args.connections,
            )
            time.sleep(1)
        with stack.engine.connect() as connection:
            recorded = connection.scalar(select(func.count()).select_from(Transition)) or 0
        messages, carried = published(stack)
    accepted = ours.statuses.get(202, 0)
    report(
        f"ingest: {n} requests over {args.connections} connections, uvicorn --workers "
        f"{args.workers}",
        [
            ("machine", machine()),
            ("bare route, requests per second (baseline)", f"{bare.rate:,.0f}"),
            ("transition requests accepted per second", f"{accepted / ours.seconds:,.0f}"),
            ("ratio (goal >= 0.25)", f"{accepted / ours.seconds / bare.rate:.2f}"),
            ("answers", json.dumps(dict(sorted(ours.statuses.items())))),
            ("rows recorded", f"{recorded}"),
            ("messages published / ids they carry", f"{messages} / {carried}"),
            ("p50 / p99 answer, ms", f"{load_ms(ours, 50)} / {load_ms(ours, 99)}"),
        ],
    )


def load_ms(result: load.Result, p: float) -> str:
    from bench.common import percentile

    return f"{percentile(result.latencies, p) * 1000:.1f}"


if __name__ == "__main__":
    main()
