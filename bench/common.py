"""What every benchmark needs: a fresh database on the machine's PostgreSQL, a Redis database of
its own, a real SMTP server, worker processes, and fast seeding of learners and attempts."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import func, insert, select, text

from proctoring.clock import utcnow
from proctoring.db import make_engine
from proctoring.models import (
    Attempt,
    Course,
    Exam,
    Outbox,
    OutboxState,
    SentEmail,
    Transition,
    TransitionState,
    User,
)
from proctoring.schema import upgrade
from proctoring.statuses import Source, Status
from tests.support.databases import REDIS_URL, create_postgres_database, drop_postgres_database
from tests.support.processes import Stack, stack, wait_until
from workers.routing import QUEUES

__all__ = ["Stack", "wait_until"]


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"


@contextlib.contextmanager
def environment(redis_db: int = 0, **env: str) -> Iterator[Stack]:
    """A fresh PostgreSQL database and an empty Redis database, and a Stack over them.

    Redis database 0: the test suite takes 1 to 15, so a benchmark and a test run at the same
    time do not empty each other's queues.
    """
    url = create_postgres_database()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    broker = REDIS_URL.rsplit("/", 1)[0] + f"/{redis_db}"
    redis.Redis.from_url(broker).flushdb()
    folder = Path(tempfile.mkdtemp(prefix="proctorq-bench-"))
    try:
        # Worker processes import bench.noop: the repository must be on their path.
        root = str(Path(__file__).resolve().parents[1])
        # The sweeps at their production intervals, not the test suite's one second: every
        # tick takes a pool process of the applying worker for a moment.
        production = {
            "PROCTORQ_SWEEP_INTERVAL_SECONDS": "5",
            "PROCTORQ_SWEEP_AFTER_SECONDS": "5",
        }
        with stack(
            folder,
            url,
            broker,
            PROCTORQ_LOG_LEVEL="WARNING",
            PYTHONPATH=root,
            **{**production, **env},
        ) as running:
            yield running
    finally:
        redis.Redis.from_url(broker).flushdb()
        drop_postgres_database(url)


_user_ids = itertools.count(1_000_000)  # each benchmark has a fresh database


def seed(
    stack_: Stack,
    learners: int,
    status: Status = Status.started,
    exams: int = 1,
    *,
    analyzed: bool = True,
) -> tuple[list[int], list[int]]:
    """A course with exams, and one attempt per learner at the first exam, in ``status``;
    then the planner's statistics, unless ``analyzed`` is false."""
    now = utcnow()
    course_id = f"course-v1:bench+{int(time.time() * 1000)}+2026"
    with stack_.engine.begin() as connection:
        connection.execute(
            insert(Course).values(
                course_id=course_id, name="Benchmark course", created_at=now, updated_at=now
            )
        )
        exam_ids = [
            connection.execute(
                insert(Exam)
                .values(
                    course_id=course_id,
                    content_id=f"block-v1:bench{i}",
                    exam_name=f"Exam {i}",
                    time_limit_mins=600,
                    is_proctored=True,
                    is_practice_exam=False,
                    is_active=True,
                    provider="acme",
                    created_at=now,
                    updated_at=now,
                )
                .returning(Exam.id)
            ).scalar_one()
            for i in range(exams)
        ]
        users = [next(_user_ids) for _ in range(learners)]
        for chunk in _chunks(users, 5000):
            connection.execute(
                insert(User),
                [
                    {
                        "user_id": u,
                        "username": f"learner{u}",
                        "email": f"learner{u}@example.test",
                        "is_staff": False,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for u in chunk
                ],
            )
        attempt_ids: list[int] = []
        for chunk in _chunks(users, 5000):
            attempt_ids += list(
                connection.execute(
                    insert(Attempt).returning(Attempt.id, sort_by_parameter_order=True),
                    [
                        {
                            "exam_id": exam_ids[0],
                            "user_id": u,
                            "status": status,
                            "attempt_code": f"code-{u}",
                            "taking_as_proctored": True,
                            "is_sample_attempt": False,
                            "started_at": now,
                            "allowed_time_limit_mins": 600,
                            "created_at": now,
                            "updated_at": now,
                        }
                        for u in chunk
                    ],
                ).scalars()
            )
    if analyzed:
        analyze(stack_)
    return attempt_ids, exam_ids


def analyze(stack_: Stack) -> None:
    """Statistics for what was just written, as autovacuum keeps them in production: a table
    filled in a second looks empty to the planner until then, and it may choose to walk a
    partial index of every live attempt where the primary key finds one."""
    if stack_.engine.dialect.name == "postgresql":
        with stack_.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("ANALYZE")


def record(
    stack_: Stack, attempt_ids: Sequence[int], to: Status, source: Source = Source.learner
) -> list[int]:
    """Pending transition rows for these attempts, as the API records them (not published)."""
    now = utcnow()
    ids: list[int] = []
    with stack_.engine.begin() as connection:
        rows = connection.execute(
            select(Attempt.id, Attempt.exam_id, Attempt.user_id).where(Attempt.id.in_(attempt_ids))
        ).all()
        for chunk in _chunks(rows, 5000):
            ids += list(
                connection.execute(
                    insert(Transition).returning(Transition.id, sort_by_parameter_order=True),
                    [
                        {
                            "attempt_id": a,
                            "exam_id": e,
                            "user_id": u,
                            "to_status": to,
                            "source": source,
                            "actor_user_id": u,
                            "idempotency_key": f"bench-{a}-{to}-{time.time_ns()}",
                            "state": TransitionState.pending,
                            "received_at": now,
                            "deliveries": 0,
                        }
                        for a, e, u in chunk
                    ],
                ).scalars()
            )
    return ids


def publish_one_each(stack_: Stack, task: str, args: Sequence[Any], queue: str) -> None:
    """One message per item, as the API publishes one per request."""
    with stack_.app.producer_or_acquire() as producer:
        for arg in args:
            stack_.app.send_task(task, args=[arg], queue=queue, producer=producer)


def counts(stack_: Stack) -> dict[str, int]:
    with stack_.engine.connect() as connection:
        return {
            "pending": connection.scalar(
                select(func.count())
                .select_from(Transition)
                .where(Transition.state == TransitionState.pending)
            )
            or 0,
            "applied": connection.scalar(
                select(func.count())
                .select_from(Transition)
                .where(Transition.state == TransitionState.applied)
            )
            or 0,
            "follow_ups_pending": connection.scalar(
                select(func.count()).select_from(Outbox).where(Outbox.state == OutboxState.pending)
            )
            or 0,
            "credit": connection.scalar(text("SELECT count(*) FROM credit_requirements")) or 0,
            "emails": connection.scalar(
                select(func.count()).select_from(SentEmail).where(SentEmail.sent_at.is_not(None))
            )
            or 0,
        }


def start_workers_and_time(stack_: Stack, done: Any, timeout: float = 600, **worker: Any) -> float:
    """Start a worker on a full queue; seconds from its readiness until ``done()``."""
    process = stack_.start_worker(wait=False, **worker)
    wait_until(
        lambda: " ready." in process.text() or not process.alive(),
        timeout=60,
        interval=0.005,
        what="the worker",
    )
    began = time.monotonic()
    wait_until(done, timeout=timeout, interval=0.01, what="the work to finish")
    return time.monotonic() - began


def queues_empty(stack_: Stack) -> bool:
    client = redis.Redis.from_url(stack_.broker_url)
    return all(client.llen(q) == 0 for q in QUEUES) and not client.hlen("unacked")


def rss_kib(pid: int) -> int:
    """Resident memory of a process and its children (a worker and its pool)."""
    out = subprocess.run(
        ["ps", "-o", "rss=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    own = subprocess.run(
        ["ps", "-o", "rss=", "-p", str(pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    return sum(int(x) for x in out + own)


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def report(title: str, rows: Sequence[tuple[str, str]]) -> None:
    width = max(len(a) for a, _ in rows)
    print(f"\n{title}\n" + "-" * len(title))
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    sys.stdout.flush()


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


__all__ += ["dt", "statistics"]
