"""Turning the wake-ups a commit recorded into messages on the broker."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Sequence

from celery import Celery
from kombu.exceptions import OperationalError

from proctoring.db import Wakeup
from tasks import names

log = logging.getLogger(__name__)

# Ids per message. One message can carry many ids: the sweeper's and the cascade's batches
# are applied in one task and one transaction instead of one each.
CHUNK = 100


class CeleryPublisher:
    """Sends one message per task name and chunk of ids.

    After a failure it pauses for a moment instead of failing every request on a dead
    broker: the rows are committed already, and the sweeper publishes them once it is back.
    """

    def __init__(self, app: Celery, pause_seconds: float = 2.0, chunk: int = CHUNK) -> None:
        self.app = app
        self.pause_seconds = pause_seconds
        self.chunk = chunk
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def __call__(self, wakeups: Sequence[Wakeup]) -> None:
        if time.monotonic() < self._paused_until:
            log.info("broker recently unreachable; %d wake-ups left to the sweeper", len(wakeups))
            return
        by_task: dict[str, list[int]] = defaultdict(list)
        for wakeup in wakeups:
            by_task[names.BY_WAKEUP[wakeup.kind]].append(wakeup.id)
        try:
            for name, ids in by_task.items():
                unique = sorted(set(ids))
                for start in range(0, len(unique), self.chunk):
                    self.app.send_task(name, args=[unique[start : start + self.chunk]])
        except (OperationalError, OSError):
            with self._lock:
                self._paused_until = time.monotonic() + self.pause_seconds
            raise
