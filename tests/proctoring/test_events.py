"""Events for the LMS, without Celery: what is recorded, in which commit, and the order and
batching of their delivery to each receiver."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from config import EventReceiver, get_settings
from proctoring import credit, events, receivers, reviews
from proctoring.attempts import archive_attempt
from proctoring.http import RetryLater
from proctoring.models import Attempt, Outbox, OutboxKind, OutboxState
from tests.support import factories as f
from tests.support.environment import webhook_secret
from tests.support.servers import HTTPEndpoint

LMS_SECRET = webhook_secret("lms-events")


@pytest.fixture
def two_receivers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``lms`` hears everything; ``grades`` only status changes."""
    monkeypatch.setenv(
        "PROCTORQ_EVENT_WEBHOOKS",
        json.dumps(
            [
                {"name": "lms", "url": "http://127.0.0.1:9/events", "secret": LMS_SECRET},
                {
                    "name": "grades",
                    "url": "http://127.0.0.1:9/grades",
                    "secret": webhook_secret("grades"),
                    "events": ["attempt.status_changed"],
                },
            ]
        ),
    )
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def event_rows(session: Session, attempt: Attempt, receiver: str = "lms") -> list[Outbox]:
    return list(
        session.scalars(
            select(Outbox)
            .where(
                Outbox.kind == OutboxKind.event,
                Outbox.attempt_id == attempt.id,
                Outbox.receiver == receiver,
            )
            .order_by(Outbox.id)
        )
    )


def bodies(rows: list[Outbox]) -> list[dict[str, object]]:
    return [json.loads(row.payload or "") for row in rows]


def test_without_receivers_nothing_is_recorded(session: Session) -> None:
    attempt = f.attempt(session)
    f.move(session, attempt, "started")
    assert event_rows(session, attempt) == []


@pytest.mark.usefixtures("two_receivers")
def test_a_status_change_is_an_event_for_each_receiver_that_wants_it(session: Session) -> None:
    attempt = f.attempt(session)
    start = f.move(session, attempt, "started", "learner")
    (body,) = bodies(event_rows(session, attempt))
    assert body["type"] == "attempt.status_changed"
    data = body["data"]
    assert isinstance(data, dict)
    exam = f.exams.get_exam(session, attempt.exam_id)
    assert data == {
        "attempt_id": attempt.id,
        "exam_id": exam.id,
        "course_id": exam.course_id,
        "content_id": exam.content_id,
        "user_id": attempt.user_id,
        "from_status": "created",
        "to_status": "started",
        "source": "learner",
        "transition_id": start.id,
        "at": data["at"],
        "event_name": "edx.special_exam.proctored.attempt.started",
    }
    assert body["timestamp"] == data["at"]
    assert len(event_rows(session, attempt, "grades")) == 1
    # A request that changes nothing tells nobody anything.
    f.move(session, attempt, "started", "learner")
    assert len(event_rows(session, attempt)) == 1


@pytest.mark.usefixtures("two_receivers")
def test_event_names_are_edx_proctorings_tracking_names(session: Session) -> None:
    kinds = {
        "proctored": {},
        "practice": {"is_practice_exam": True},
        "timed": {"is_proctored": False},
    }
    for kind, fields in kinds.items():
        attempt = f.attempt(session, f.exam(session, **fields))
        f.move(session, attempt, "started")
        (body,) = bodies(event_rows(session, attempt, "grades"))
        assert body["data"]["event_name"] == f"edx.special_exam.{kind}.attempt.started"  # type: ignore[index]


@pytest.mark.usefixtures("two_receivers")
def test_a_credit_change_the_table_refused_as_older_is_no_event(session: Session) -> None:
    """Two credit follow-ups settled out of order: the newer writes and is an event; the
    older is refused by the upsert and tells receivers nothing (they would end on it)."""
    attempt = f.at(session, f.attempt(session), "submitted")
    f.move(session, attempt, "verified")
    f.move(session, attempt, "rejected")
    *_, older, newer = session.scalars(
        select(Outbox)
        .where(
            Outbox.kind == OutboxKind.credit,
            Outbox.attempt_id == attempt.id,
            Outbox.state == OutboxState.pending,
        )
        .order_by(Outbox.id)
    ).all()
    credit.settle_credit(f.same_session(session), [newer.id], None)
    credit.settle_credit(f.same_session(session), [older.id], None)
    changed = [b for b in bodies(event_rows(session, attempt)) if b["type"] == "credit.changed"]
    assert [b["data"]["status"] for b in changed] == ["failed"]  # type: ignore[index]


@pytest.mark.usefixtures("two_receivers")
def test_credit_set_and_cleared_are_events_of_the_commit_that_writes_them(
    session: Session,
) -> None:
    attempt = f.attempt(session)
    decline = f.move(session, attempt, "declined", "learner")
    assert [b["type"] for b in bodies(event_rows(session, attempt))] == ["attempt.status_changed"]
    credit_row = session.scalars(
        select(Outbox).where(Outbox.kind == OutboxKind.credit, Outbox.attempt_id == attempt.id)
    ).one()
    credit.settle_credit(f.same_session(session), [credit_row.id], None)
    archive_attempt(session, attempt.id)
    clear_row = session.scalars(select(Outbox).where(Outbox.kind == OutboxKind.clear_credit)).one()
    credit.settle_credit(f.same_session(session), [clear_row.id], None)
    sent = bodies(event_rows(session, attempt))
    assert [b["type"] for b in sent] == [
        "attempt.status_changed",
        "credit.changed",
        "credit.changed",
    ]
    exam = f.exams.get_exam(session, attempt.exam_id)
    common = {
        "attempt_id": attempt.id,
        "user_id": attempt.user_id,
        "course_id": exam.course_id,
        "namespace": "proctored_exam",
        "name": exam.content_id,
    }
    assert sent[1]["data"] == {**common, "status": "failed", "transition_id": decline.id}
    assert sent[2]["data"] == {**common, "status": None, "transition_id": None}
    assert event_rows(session, attempt, "grades")[-1].payload is not None
    assert len(event_rows(session, attempt, "grades")) == 1  # it asked for status changes only


@pytest.mark.usefixtures("two_receivers")
def test_a_stored_review_is_an_event_with_the_vendors_word_and_no_reviewer(
    session: Session,
) -> None:
    attempt = f.attempt(session)
    f.move(session, attempt, "started")
    reviews.record_review(
        session,
        provider="acme",
        webhook_id="rev-1",
        status="violation",
        attempt_code=attempt.attempt_code,
        reviewed_by="reviewer@example.test",
    )
    (review,) = [b for b in bodies(event_rows(session, attempt)) if b["type"] == "review.received"]
    assert review["data"] == {
        "attempt_id": attempt.id,
        "provider": "acme",
        "review_status": "violation",
        "outcome": "rejected",
        "state": "held",
    }
    every_body = " ".join(row.payload or "" for row in event_rows(session, attempt))
    assert "@" not in every_body and "learner" not in every_body


class Recorder:
    """A receiver's answers, scripted per call: None (taken), a reason (never), or RetryLater."""

    def __init__(self, answers: dict[str, list[object]] | None = None) -> None:
        self.answers = answers or {}
        self.sent: list[tuple[str, int, str]] = []

    def __call__(self, receiver: str, outbox_id: int, body: str) -> str | None:
        script = self.answers.get(receiver, [])
        answer = script.pop(0) if script else None
        if isinstance(answer, Exception):
            raise answer
        self.sent.append((receiver, outbox_id, json.loads(body)["type"]))
        assert answer is None or isinstance(answer, str)
        return answer


def journey(session: Session) -> Attempt:
    attempt = f.attempt(session)
    for status in ("started", "submitted", "verified"):
        f.move(session, attempt, status)
    return attempt


def make_due(session: Session) -> None:
    session.execute(update(Outbox).values(next_try_at=None))


@pytest.mark.usefixtures("two_receivers")
def test_one_batch_sends_a_sequence_in_order_from_whichever_row_it_is_woken_for(
    session: Session,
) -> None:
    attempt = journey(session)
    rows = event_rows(session, attempt)
    send = Recorder()
    # Woken for the last row only: the whole sequence goes, oldest first.
    result = receivers.deliver_events(f.same_session(session), [rows[-1].id], send)
    assert [i for _, i, _ in send.sent] == [r.id for r in rows]
    assert sorted(result.done) == [r.id for r in rows]
    assert all(r.state is OutboxState.done for r in event_rows(session, attempt))
    # The other receiver's rows were not part of it.
    assert all(r.state is OutboxState.pending for r in event_rows(session, attempt, "grades"))


@pytest.mark.usefixtures("two_receivers")
def test_a_head_to_try_again_holds_its_sequence_and_keeps_its_webhook_id(
    session: Session,
) -> None:
    attempt = journey(session)
    first, *rest = event_rows(session, attempt)
    send = Recorder({"lms": [RetryLater("receiver lms answered 503")]})
    ids = [first.id] + [r.id for r in rest]
    result = receivers.deliver_events(f.same_session(session), ids, send)
    assert send.sent == [] and result.retry_ids == [first.id]
    session.refresh(first)
    assert (first.state, first.tries) == (OutboxState.pending, 1)
    # Woken for the later rows before the head's next try: nothing overtakes it.
    receivers.deliver_events(f.same_session(session), [r.id for r in rest], send)
    assert send.sent == []
    make_due(session)
    receivers.deliver_events(f.same_session(session), [rest[-1].id], send)
    assert [i for _, i, _ in send.sent] == ids
    assert events.webhook_id(first.id) == f"proctorq-event-{first.id}"


@pytest.mark.usefixtures("two_receivers")
def test_an_event_failed_for_good_lets_the_next_one_go(session: Session) -> None:
    attempt = journey(session)
    rows = event_rows(session, attempt)
    send = Recorder({"lms": ["receiver lms answered 410: gone"]})
    result = receivers.deliver_events(f.same_session(session), [rows[0].id], send)
    assert result.failed == [rows[0].id]
    assert sorted(result.done) == [r.id for r in rows[1:]]
    session.refresh(rows[0])
    assert rows[0].detail == "receiver lms answered 410: gone"


@pytest.mark.usefixtures("two_receivers")
def test_a_receiver_away_holds_only_its_own_events(session: Session) -> None:
    first, second = journey(session), journey(session)
    send = Recorder({"lms": [RetryLater("receiver lms unreachable: ConnectError")]})
    every = [
        r.id
        for a in (first, second)
        for who in ("lms", "grades")
        for r in event_rows(session, a, who)
    ]
    result = receivers.deliver_events(f.same_session(session), every, send)
    # One call to the receiver that is away, none more for its other attempt.
    assert {who for who, _, _ in send.sent} == {"grades"}
    assert len(send.sent) == 6
    assert sorted(result.retry_ids) == [event_rows(session, a)[0].id for a in (first, second)]


@pytest.mark.usefixtures("two_receivers")
def test_a_removed_receiver_fails_its_events_with_a_sentence(session: Session) -> None:
    attempt = f.attempt(session)
    f.move(session, attempt, "started")
    (row,) = event_rows(session, attempt)
    sender = receivers.EventSender(get_settings().event_webhooks[1:])
    result = receivers.deliver_events(f.same_session(session), [row.id], sender)
    assert result.failed == [row.id]
    session.refresh(row)
    assert row.detail == "receiver 'lms' is not configured in PROCTORQ_EVENT_WEBHOOKS"


def test_the_sender_signs_each_try_afresh_with_the_same_webhook_id() -> None:
    with HTTPEndpoint(answers=[(503, {"Retry-After": "0"}), (200, {})]) as endpoint:
        receiver = EventReceiver(name="lms", url=endpoint.url, secret=LMS_SECRET)
        sender = receivers.EventSender([receiver], timeout=5)
        body = '{"type":"attempt.status_changed","timestamp":"t","data":{}}'
        with pytest.raises(RetryLater, match="answered 503"):
            sender("lms", 41, body)
        assert sender("lms", 41, body) is None
        sender.close()
    verifier = Webhook(LMS_SECRET)
    for received in endpoint.received:
        assert verifier.verify(received.raw, received.headers) == json.loads(body)
    assert [r.headers["webhook-id"] for r in endpoint.received] == ["proctorq-event-41"] * 2


@pytest.mark.usefixtures("two_receivers")
def test_operators_see_each_receivers_events_by_state(session: Session) -> None:
    from proctoring import operations

    attempt = journey(session)
    send = Recorder({"lms": [None, "receiver lms answered 410: gone", RetryLater("503")]})
    receivers.deliver_events(f.same_session(session), [event_rows(session, attempt)[0].id], send)
    figures = operations.backlog(session).events
    assert {k: v for k, v in figures["lms"].items() if k != "oldest_pending_seconds"} == {
        "delivered": 1,
        "failed": 1,
        "pending": 1,
    }
    assert figures["lms"]["oldest_pending_seconds"] is not None
    assert figures["grades"]["pending"] == 3 and figures["grades"]["delivered"] == 0
    failed = [i for i in operations.failed_items(session) if i.kind == "event"]
    assert [(i.attempt_id, i.detail) for i in failed] == [
        (attempt.id, "receiver lms answered 410: gone")
    ]
    replayed = operations.replay(session, outbox_ids=[failed[0].id])
    assert replayed == ([], [failed[0].id])
