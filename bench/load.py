"""A small HTTP/1.1 load generator: keep-alive connections, pre-built requests, paced or flat
out. Lean enough that the server, not the generator, is what gets measured."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Request = Callable[[], bytes]


def post(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Content-Length: {len(body)}",
        "Content-Type: application/json",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Result:
    seconds: float
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    answers: list[bytes] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds


async def _connection(
    host: str,
    port: int,
    requests: Sequence[Request],
    result: Result,
    started: float,
    pace: float | None,
    keep: bool,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for index, make in enumerate(requests):
            if pace is not None:
                due = started + index * pace
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            began = time.perf_counter()
            writer.write(make())
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length) if length else b""
            result.latencies.append(time.perf_counter() - began)
            status = int(status_line.split()[1])
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if keep:
                result.answers.append(body)
    finally:
        writer.close()


async def _run(
    host: str, port: int, plans: list[list[Request]], rate: float | None, keep: bool
) -> Result:
    result = Result(seconds=0.0)
    started = time.perf_counter()
    # Paced: each connection sends at rate / connections, offset so the whole is even.
    pace = None if rate is None else len(plans) / rate
    tasks = []
    for offset, plan in enumerate(plans):
        begin = started + (0 if pace is None else offset * pace / len(plans))
        tasks.append(_connection(host, port, plan, result, begin, pace, keep))
    await asyncio.gather(*tasks)
    result.seconds = time.perf_counter() - started
    return result


def run(
    port: int,
    requests: Sequence[Request],
    connections: int = 32,
    rate: float | None = None,
    keep_answers: bool = False,
) -> Result:
    """Send every request, over ``connections`` keep-alive connections; flat out, or at
    ``rate`` requests per second in all."""
    plans: list[list[Request]] = [[] for _ in range(connections)]
    for index, request in enumerate(requests):
        plans[index % connections].append(request)
    return asyncio.run(_run("127.0.0.1", port, plans, rate, keep_answers))


def shuffled(items: Sequence[int], seed: int = 7) -> list[int]:
    copy = list(items)
    random.Random(seed).shuffle(copy)
    return copy
