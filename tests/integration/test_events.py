"""Events for the LMS for real: a worker on Redis and PostgreSQL signs and sends them to a real
HTTP receiver, which checks every signature with the standardwebhooks library."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from config import get_settings
from proctoring import reviews
from proctoring.models import Attempt, Outbox, OutboxKind, OutboxState
from tests.support import scenario
from tests.support.events import out_of_order, receivers_setting, taken_once, verified
from tests.support.processes import Stack, stack, wait_until
from tests.support.scenario import Seat, record, wait_final
from tests.support.servers import HTTPEndpoint, SMTPServer


@pytest.fixture
def receiver() -> Iterator[HTTPEndpoint]:
    with HTTPEndpoint() as endpoint:
        yield endpoint


@pytest.fixture
def events_pipeline(
    tmp_path: Path,
    postgres_url: str,
    redis_url: str,
    smtp: SMTPServer,
    receiver: HTTPEndpoint,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Stack]:
    """PostgreSQL, Redis, SMTP and one event receiver, ``lms``; no process started yet. The
    test's own process records with the same receivers as the workers."""
    setting = receivers_setting(("lms", receiver))
    monkeypatch.setenv("PROCTORQ_EVENT_WEBHOOKS", setting)
    get_settings.cache_clear()
    with stack(
        tmp_path,
        postgres_url,
        redis_url,
        PROCTORQ_SMTP_URL=smtp.url,
        PROCTORQ_EVENT_WEBHOOKS=setting,
    ) as running:
        yield running
    get_settings.cache_clear()


def event_rows(pipeline: Stack) -> list[Outbox]:
    with pipeline.uow() as session:
        return list(
            session.scalars(
                select(Outbox).where(Outbox.kind == OutboxKind.event).order_by(Outbox.id)
            )
        )


def all_delivered(pipeline: Stack) -> bool:
    rows = event_rows(pipeline)
    return bool(rows) and all(row.state is OutboxState.done for row in rows)


def review(pipeline: Stack, seat: Seat, word: str, webhook_id: str) -> None:
    with pipeline.uow() as session:
        code = session.get_one(Attempt, seat.attempt_id).attempt_code
        reviews.record_review(
            session, provider="acme", webhook_id=webhook_id, status=word, attempt_code=code
        )


def test_a_receiver_sees_a_learners_journey_in_order_every_message_signed(
    events_pipeline: Stack, receiver: HTTPEndpoint
) -> None:
    pipeline = events_pipeline
    pipeline.start_worker()
    _, _, (seat,) = scenario.course(pipeline)
    wait_final(pipeline, [record(pipeline, seat, "started"), record(pipeline, seat, "submitted")])
    review(pipeline, seat, "passed", "review-1")
    wait_until(lambda: scenario.nothing_pending(pipeline), what="the journey to end")
    assert all_delivered(pipeline)
    events = taken_once(verified(receiver.received))
    assert out_of_order(events) == []
    assert len(events) == len(event_rows(pipeline))
    changes = [e.body["data"] for e in events if e.body["type"] == "attempt.status_changed"]
    assert [(c["from_status"], c["to_status"]) for c in changes] == [
        ("created", "started"),
        ("started", "submitted"),
        ("submitted", "verified"),
    ]
    assert changes[-1]["event_name"] == "edx.special_exam.proctored.attempt.verified"
    assert [c["source"] for c in changes] == ["learner", "learner", "vendor"]
    credit = [e.body["data"]["status"] for e in events if e.body["type"] == "credit.changed"]
    assert credit == ["submitted", "satisfied"]
    (received,) = [e.body["data"] for e in events if e.body["type"] == "review.received"]
    assert (received["review_status"], received["outcome"]) == ("passed", "verified")
    every_body = json.dumps([e.body for e in events])
    assert "@" not in every_body and "learner1" not in every_body  # no address, no username


def refused_three_times(pipeline: Stack, receiver: HTTPEndpoint, *statuses: str) -> None:
    """A worker applies these statuses of one learner while the receiver answers 503 thrice."""
    receiver.answers = [(503, {})] * 3
    pipeline.start_worker()
    _, _, (seat,) = scenario.course(pipeline)
    wait_final(pipeline, [record(pipeline, seat, status) for status in statuses])


def test_a_receiver_answering_503_gets_the_same_webhook_id_until_it_accepts(
    events_pipeline: Stack, receiver: HTTPEndpoint
) -> None:
    pipeline = events_pipeline
    refused_three_times(pipeline, receiver, "started")
    wait_until(lambda: all_delivered(pipeline), timeout=60, what="the event to be taken")
    posts = verified(receiver.received)
    assert len(posts) == 4
    assert len({post.webhook_id for post in posts}) == 1
    assert len({post.body["timestamp"] for post in posts}) == 1  # the same body every time
    (row,) = event_rows(pipeline)
    assert (row.tries, row.detail) == (3, None)


def test_one_attempts_events_never_overtake_a_first_one_that_fails_for_a_while(
    events_pipeline: Stack, receiver: HTTPEndpoint
) -> None:
    pipeline = events_pipeline
    refused_three_times(pipeline, receiver, "started", "ready_to_submit", "submitted")
    wait_until(lambda: scenario.nothing_pending(pipeline), timeout=60, what="every event")
    posts = verified(receiver.received)
    first = min(post.number for post in posts)
    # Everything sent while the first was refused was the first again.
    assert [post.number for post in posts[:4]] == [first] * 4
    assert out_of_order(posts) == []
    assert len(taken_once(posts)) == len(event_rows(pipeline))


def test_a_receiver_down_for_a_while_slows_no_learner(
    events_pipeline: Stack, receiver: HTTPEndpoint, smtp: SMTPServer
) -> None:
    receiver.down()
    pipeline = events_pipeline
    pipeline.start_worker()
    _, _, seats = scenario.course(pipeline, learners=3)
    ids = [record(pipeline, seat, status) for seat in seats for status in ("started", "submitted")]
    # Applied, and the e-mails sent, as fast as without events.
    wait_final(pipeline, ids, timeout=30)
    wait_until(lambda: len(smtp.messages) == len(seats), timeout=30, what="the e-mails")
    wait_until(
        lambda: any(row.tries >= 2 for row in event_rows(pipeline)),
        timeout=30,
        what="the events to be tried and postponed",
    )
    assert receiver.received == []
    receiver.up()
    wait_until(lambda: all_delivered(pipeline), timeout=90, what="the events once it is back")
    events = taken_once(verified(receiver.received))
    assert out_of_order(events) == []
    assert len(events) == len(event_rows(pipeline))
