"""The API's coalescing publisher: wake-ups handed over while one message is being sent go out
together in the next; a failed send loses the batch to the sweeper, not the publisher; apply
wake-ups an apply message still waiting will take up are left out (real Redis)."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import redis

from api.app import create_app as create_api
from config import load_settings
from proctoring.db import Wakeup, WakeupKind
from proctoring.models import OutboxKind
from tests.support.databases import migrated_database
from workers import routing
from workers.app import create_app
from workers.publisher import (
    CeleryPublisher,
    CoalescingPublisher,
    DrainWaiting,
    drain_waiting_for,
)


class Broker:
    """Stands in for the Celery publisher: records each batch; the first send waits for a go."""

    def __init__(self, fail_first: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.sending = threading.Event()
        self.go = threading.Event()
        self.fail_first = fail_first

    def __call__(self, wakeups: Sequence[Wakeup]) -> None:
        first = not self.batches
        self.batches.append([w.id for w in wakeups])
        if first:
            self.sending.set()
            assert self.go.wait(10)
            if self.fail_first:
                raise ConnectionError("broker unreachable")


def test_wakeups_arriving_during_a_send_go_out_together_once() -> None:
    broker = Broker()
    publisher = CoalescingPublisher(broker)  # type: ignore[arg-type]
    publisher([Wakeup("apply", 1)])
    assert broker.sending.wait(10)
    for transition_id in range(2, 52):
        publisher([Wakeup("apply", transition_id)])
    broker.go.set()
    assert publisher.flush(10)
    assert broker.batches == [[1], list(range(2, 52))]


def test_a_failed_send_is_logged_and_the_next_ones_still_go(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = Broker(fail_first=True)
    publisher = CoalescingPublisher(broker)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="workers.publisher"):
        publisher([Wakeup("apply", 1)])
        assert broker.sending.wait(10)
        publisher([Wakeup("apply", 2)])
        broker.go.set()
        assert publisher.flush(10)
    assert broker.batches == [[1], [2]]
    assert "publishing 1 wake-ups failed; the sweeper will" in caplog.text


def test_every_kind_of_wakeup_is_sent_as_a_task() -> None:
    assert set(routing.BY_WAKEUP) == set(WakeupKind)
    assert {str(kind) for kind in WakeupKind} == {"apply", *(str(k) for k in OutboxKind)}


def test_under_a_steady_stream_wakeups_are_gathered_for_the_linger() -> None:
    """A wake-up after a quiet moment goes out at once; one arriving soon after a send waits
    the linger, and those arriving meanwhile go with it."""
    batches: list[list[int]] = []
    publisher = CoalescingPublisher(
        lambda wakeups: batches.append([w.id for w in wakeups]),  # type: ignore[arg-type]
        linger_seconds=0.3,
    )
    began = time.monotonic()
    publisher([Wakeup("apply", 1)])
    assert publisher.flush(10)
    assert time.monotonic() - began < 0.2  # alone: sent at once
    for transition_id in range(2, 12):
        publisher([Wakeup("apply", transition_id)])
        time.sleep(0.01)
    assert publisher.flush(10)
    assert batches == [[1], list(range(2, 12))]


def test_an_apply_message_waiting_in_the_queue_makes_a_wakeup_needless(redis_url: str) -> None:
    """Every apply message drains what is waiting when it runs: while one waits in the
    queue, it will apply a request committed now. A cascade message or a retry that waits
    does not count."""
    celery = create_app(load_settings(broker_url=redis_url), current=False)
    waiting = DrainWaiting(redis_url)
    assert not waiting()
    celery.send_task(routing.CASCADE_DECLINES, args=[[1]])
    assert not waiting()
    celery.send_task(routing.APPLY_TRANSITIONS, args=[[2]], countdown=30)
    assert not waiting()
    celery.send_task(routing.APPLY_TRANSITIONS, args=[[3]])
    assert waiting()
    assert not DrainWaiting("redis://127.0.0.1:1/0")()  # no answer: send it
    for unreadable in (b"not json", b"[1]", b'{"headers": "x"}', b"{}"):
        redis.Redis.from_url(redis_url).lpush("transitions", unreadable)
        assert not waiting(), unreadable


def test_the_api_leaves_out_apply_wakeups_an_apply_message_will_take_up(
    redis_url: str,
) -> None:
    celery = create_app(load_settings(broker_url=redis_url), current=False)
    client = redis.Redis.from_url(redis_url)
    publisher = CeleryPublisher(celery, drain_waiting=DrainWaiting(redis_url))
    publisher([Wakeup("apply", 1)])
    publisher([Wakeup("apply", 2), Wakeup("credit", 7)])  # the first one is still waiting
    carried = [
        (json.loads(m)["headers"]["task"], json.loads(base64.b64decode(json.loads(m)["body"]))[0])
        for m in reversed(client.lrange("transitions", 0, -1) + client.lrange("credit", 0, -1))
    ]
    assert sorted(carried) == [(routing.APPLY_TRANSITIONS, [[1]]), (routing.UPDATE_CREDIT, [[7]])]


def test_only_a_redis_broker_and_draining_messages_leave_wakeups_out() -> None:
    redis_broker = "redis://127.0.0.1:6379/0"
    assert drain_waiting_for(load_settings(broker_url=redis_broker)) is not None
    assert drain_waiting_for(load_settings(broker_url=redis_broker, apply_batch_size=0)) is None
    assert drain_waiting_for(load_settings(broker_url="sqla+sqlite:///var/b.sqlite3")) is None


def test_the_api_checks_the_queue_on_redis(redis_url: str, tmp_path: Path) -> None:
    engine_url = migrated_database("sqlite", str(tmp_path))
    settings = load_settings(broker_url=redis_url, database_url=engine_url)
    app = create_api(settings, celery=create_app(settings, current=False))
    publisher = app.state.uow.publisher
    assert isinstance(publisher.inner.drain_waiting, DrainWaiting)
    app.state.uow.engine.dispose()
