"""Turning the wake-ups a commit recorded into messages on the broker."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from config import Settings
from proctoring.db import Wakeup
from workers import routing

log = logging.getLogger(__name__)

# Ids per message. One message can carry many ids: the sweeper's and the cascade's batches
# are applied in one task and one transaction instead of one each.
CHUNK = 100

REDIS_SCHEMES = ("redis://", "rediss://")


class DrainWaiting:
    """Whether the newest message in the transitions queue (Redis) is an apply message due at
    once. Every apply message drains what is waiting when it runs (tasks/apply.py), so one
    still in the queue will apply any request committed before it is taken: a wake-up sent
    now would only cost its sender, the worker and the database a message that finds nothing.
    A drain that leaves requests behind sends a message for them itself (proctoring/apply.py).

    Anything unsure (no answer from Redis, a message it cannot read, a cascade message, a
    retry that waits) counts as no: the wake-up is then sent.
    """

    def __init__(self, broker_url: str) -> None:
        self._client = redis.Redis.from_url(
            broker_url, socket_timeout=1.0, socket_connect_timeout=1.0
        )

    def __call__(self) -> bool:
        try:
            newest = self._client.lindex(routing.ROUTES[routing.APPLY_TRANSITIONS], 0)
            if newest is None:
                return False
            headers = json.loads(newest)["headers"]
            return bool(
                headers.get("task") == routing.APPLY_TRANSITIONS and headers.get("eta") is None
            )
        except (redis.RedisError, ValueError, LookupError, TypeError, AttributeError):
            return False


def drain_waiting_for(settings: Settings) -> DrainWaiting | None:
    """The check for a broker that can answer it (Redis), when apply messages drain at all
    (``PROCTORQ_APPLY_BATCH_SIZE`` above 0, the same for the API and the workers)."""
    if settings.apply_batch_size <= 0 or not settings.broker_url.startswith(REDIS_SCHEMES):
        return None
    return DrainWaiting(settings.broker_url)


class CeleryPublisher:
    """Sends one message per task name and chunk of ids.

    After a failure it pauses for a moment instead of failing every request on a dead
    broker: the rows are committed already, and the sweeper publishes them once it is back.

    With ``drain_waiting`` (the API's, on Redis), apply wake-ups are not sent while an apply
    message is still waiting in the queue: that one applies them (``DrainWaiting``).
    """

    def __init__(
        self,
        app: Celery,
        pause_seconds: float = 2.0,
        chunk: int = CHUNK,
        drain_waiting: Callable[[], bool] | None = None,
    ) -> None:
        self.app = app
        self.pause_seconds = pause_seconds
        self.chunk = chunk
        self.drain_waiting = drain_waiting
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def __call__(self, wakeups: Sequence[Wakeup]) -> None:
        if time.monotonic() < self._paused_until:
            log.info("broker recently unreachable; %d wake-ups left to the sweeper", len(wakeups))
            return
        by_task: dict[str, list[int]] = defaultdict(list)
        for wakeup in wakeups:
            by_task[routing.BY_WAKEUP[wakeup.kind]].append(wakeup.id)
        if routing.APPLY_TRANSITIONS in by_task and self.drain_waiting and self.drain_waiting():
            del by_task[routing.APPLY_TRANSITIONS]
        try:
            for name, ids in by_task.items():
                unique = sorted(set(ids))
                for start in range(0, len(unique), self.chunk):
                    self.app.send_task(name, args=[unique[start : start + self.chunk]])
        except (OperationalError, OSError):
            with self._lock:
                self._paused_until = time.monotonic() + self.pause_seconds
            raise


class CoalescingPublisher:
    """Publishes from a thread of its own; wake-ups that arrive while a message is being sent
    go out together in the next one.

    Under load, many requests then cost one message, and one task applies them in one
    transaction; when idle, a wake-up is sent at once. While wake-ups keep coming (the last
    message went out less than ``linger_seconds`` ago), the thread gathers them that long
    before it sends: a message costs its sender about as much CPU as recording a request.
    Rule 1 holds: only committed rows are handed over, and one that a crash keeps from being
    published is published by the sweeper.
    """

    def __init__(self, inner: CeleryPublisher, linger_seconds: float = 0.0) -> None:
        self.inner = inner
        self.linger_seconds = linger_seconds
        self._sent_at = 0.0
        self._waiting: list[Wakeup] = []
        self._sending = 0
        self._condition = threading.Condition()
        self._pid: int | None = None

    def __call__(self, wakeups: Sequence[Wakeup]) -> None:
        with self._condition:
            self._start_once()
            self._waiting.extend(wakeups)
            self._condition.notify()

    def _start_once(self) -> None:
        # After a fork (uvicorn and Celery both fork) the thread must be started again.
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._waiting = []
            threading.Thread(target=self._run, name="proctorq-publisher", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._waiting:
                    self._condition.wait()
            if time.monotonic() - self._sent_at < self.linger_seconds:
                time.sleep(self.linger_seconds)  # more are on their way: one message for all
            with self._condition:
                batch, self._waiting = self._waiting, []
                self._sending = len(batch)
            try:
                self.inner(batch)
            except Exception:  # the rows are committed: the sweeper publishes them later
                log.warning("publishing %d wake-ups failed; the sweeper will", len(batch))
            self._sent_at = time.monotonic()
            with self._condition:
                self._sending = 0
                self._condition.notify_all()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything handed over has been sent (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._waiting or self._sending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._condition.wait(left)
        return True
