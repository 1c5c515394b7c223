"""The API's coalescing publisher: wake-ups handed over while one message is being sent go out
together in the next; a failed send loses the batch to the sweeper, not the publisher."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import pytest

from proctoring.db import Wakeup, WakeupKind
from proctoring.models import OutboxKind
from workers import routing
from workers.publisher import CoalescingPublisher


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
