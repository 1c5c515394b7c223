"""The baseline task: the same Celery app, base class and settings, doing nothing but count."""

from __future__ import annotations

import redis

from workers.app import app

_counter: redis.Redis | None = None


@app.task(name="proctorq.bench_noop", ignore_result=True)
def noop(counter_url: str, key: str) -> None:
    global _counter
    if _counter is None:
        _counter = redis.Redis.from_url(counter_url)
    _counter.incr(key)
