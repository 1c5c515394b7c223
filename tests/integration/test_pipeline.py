"""The pipeline for real: worker processes on Redis and PostgreSQL, SMTP, the LMS endpoint."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from proctoring import attempts
from proctoring.models import (
    Attempt,
    AttemptHistory,
    CreditRequirement,
    Outbox,
    SentEmail,
    Transition,
    TransitionState,
)
from tests.support import scenario
from tests.support.databases import AMQP_URL
from tests.support.processes import Stack, stack, wait_until
from tests.support.scenario import Seat, record, wait_final
from tests.support.servers import HTTPEndpoint, SMTPServer
from workers import routing


def test_a_recorded_transition_is_applied_with_its_follow_ups(
    pipeline: Stack, smtp: SMTPServer, lms: HTTPEndpoint
) -> None:
    pipeline.start_worker()
    course_id, _, (seat,) = scenario.course(pipeline)
    ids = [record(pipeline, seat, "started"), record(pipeline, seat, "submitted")]
    wait_final(pipeline, ids)
    # The POST and the SMTP send come before their outbox row's commit: wait for that too.
    wait_until(lambda: len(smtp.messages) == 1 and len(lms.received) == 1, what="follow-ups")
    wait_until(lambda: scenario.nothing_pending(pipeline), what="follow-ups to commit")

    with pipeline.uow() as session:
        attempt = session.get_one(Attempt, seat.attempt_id)
        assert attempt.status.value == "submitted"
        requirement = session.scalars(select(CreditRequirement)).one()
        assert (requirement.status.value, requirement.transition_id) == ("submitted", ids[1])
        assert session.scalars(select(SentEmail)).one().sent_at is not None
    (message,) = smtp.messages
    assert message["To"] == f"l{seat.user_id}@example.test"
    assert "will be" in message.get_body(("plain",)).get_content()
    (post,) = lms.received
    assert post.body["status"] == "submitted"
    assert post.body["course_id"] == course_id
    assert post.headers["Idempotency-Key"].startswith("proctorq-credit-")


def test_a_decline_cascades_to_the_other_real_exams(pipeline: Stack) -> None:
    pipeline.start_worker()
    course_id, exam_ids, (seat,) = scenario.course(pipeline, exams_count=3)
    with pipeline.uow() as session:
        from proctoring import exams

        practice = exams.create_exam(
            session,
            course_id=course_id,
            content_id="block-v1:practice",
            exam_name="P",
            time_limit_mins=10,
            is_practice_exam=True,
        ).id
        timed = exams.create_exam(
            session,
            course_id=course_id,
            content_id="block-v1:timed",
            exam_name="T",
            time_limit_mins=10,
            is_proctored=False,
        ).id
        inactive = exams.create_exam(
            session,
            course_id=course_id,
            content_id="block-v1:off",
            exam_name="O",
            time_limit_mins=10,
            is_active=False,
        ).id
    wait_final(pipeline, [record(pipeline, seat, "declined")])

    def cascaded() -> list[Attempt]:
        with pipeline.uow() as session:
            rows = session.scalars(
                select(Attempt).where(
                    Attempt.user_id == seat.user_id, Attempt.exam_id != seat.exam_id
                )
            ).all()
            return (
                list(rows)
                if len(rows) == 2 and all(r.status.value == "declined" for r in rows)
                else []
            )

    declined = wait_until(cascaded, what="two cascaded declines")
    assert sorted(a.exam_id for a in declined) == sorted(exam_ids[1:])
    assert not {practice, timed, inactive} & {a.exam_id for a in declined}
    wait_until(lambda: scenario.nothing_pending(pipeline), what="follow-ups to finish")


def test_one_request_published_200_times_applies_and_mails_once(
    pipeline: Stack, smtp: SMTPServer
) -> None:
    _, _, (seat,) = scenario.course(pipeline)
    started = record(pipeline, seat, "started")
    submitted = record(pipeline, seat, "submitted")
    for _ in range(200):
        pipeline.app.send_task(routing.APPLY_TRANSITIONS, args=[[submitted]])
    pipeline.start_worker()
    wait_final(pipeline, [started, submitted])
    wait_until(lambda: scenario.nothing_pending(pipeline), what="follow-ups")
    with pipeline.uow() as session:
        email_rows = session.scalars(select(SentEmail.id)).all()
    for _ in range(50):  # the e-mail follow-up delivered again, too
        pipeline.app.send_task(routing.SEND_STATUS_EMAIL, args=[list(email_rows)])
    wait_until(lambda: _queues_empty(pipeline), what="the queues to drain")
    assert scenario.history_count(pipeline, seat.attempt_id) == 2
    assert len(smtp.messages) == 1


def _queues_empty(pipeline: Stack) -> bool:
    from workers.queues import queue_depths

    return not any(queue_depths(pipeline.app).values())


def test_fifty_requests_from_several_threads_apply_in_received_order(pipeline: Stack) -> None:
    pipeline.start_worker(concurrency=2)
    pipeline.start_worker("w2", concurrency=2)
    _, _, (seat,) = scenario.course(pipeline)
    record(pipeline, seat, "started", "staff")
    ids: list[int] = []
    lock = threading.Lock()

    def send(thread: int) -> None:
        for i in range(10):
            to = "ready_to_submit" if (thread + i) % 2 else "started"
            transition_id = record(pipeline, seat, to, "staff")
            with lock:
                ids.append(transition_id)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 50
    wait_final(pipeline, ids)

    with pipeline.uow() as session:
        rows = session.scalars(
            select(Transition).where(Transition.id.in_(ids)).order_by(Transition.id)
        ).all()
        applied_at = [t.applied_at for t in rows]
        assert applied_at == sorted(applied_at)  # type: ignore[type-var]
        chain = session.scalars(
            select(AttemptHistory.transition_id)
            .where(AttemptHistory.attempt_id == seat.attempt_id)
            .order_by(AttemptHistory.id)
        ).all()
        assert list(chain) == sorted(chain)
        # Replaying the same requests in received order gives the same final status.
        status = "started"
        for t in rows:
            if t.to_status.value != status:
                status = t.to_status.value
        assert session.get_one(Attempt, seat.attempt_id).status.value == status
        assert all(t.state is not TransitionState.pending for t in rows)


def test_a_worker_killed_while_applying_loses_nothing_and_repeats_nothing(
    pipeline: Stack, smtp: SMTPServer
) -> None:
    # The follow-ups have their own worker: this test is about the apply step.
    pipeline.start_worker("followups", queues="credit,email,maintenance")
    pipeline.start_beat()
    _, _, seats = scenario.course(pipeline, learners=60)
    ids = [record(pipeline, s, to) for s in seats for to in ("started", "submitted")]
    victim = pipeline.start_worker("victim", queues="transitions")
    wait_until(lambda: _applied(pipeline) >= 20, timeout=60, what="some requests applied")
    victim.kill()
    pipeline.start_worker("replacement", queues="transitions")
    wait_final(pipeline, ids, timeout=120)
    wait_until(lambda: scenario.nothing_pending(pipeline), timeout=120, what="follow-ups")
    for seat in seats:
        assert scenario.history_count(pipeline, seat.attempt_id) == 2
    with pipeline.uow() as session:
        states = session.scalars(select(Transition.state).where(Transition.id.in_(ids))).all()
    assert set(states) == {TransitionState.applied}
    wait_until(lambda: len(smtp.messages) >= len(seats), what="one e-mail per learner")
    assert sorted(m["To"] for m in smtp.messages) == sorted(
        f"l{s.user_id}@example.test" for s in seats
    )


def _applied(pipeline: Stack) -> int:
    with pipeline.uow() as session:
        return len(
            session.scalars(
                select(Transition.id).where(Transition.state == TransitionState.applied)
            ).all()
        )


def test_requests_recorded_while_redis_is_down_are_applied_when_it_returns(
    tmp_path: Path, postgres_url: str, smtp: SMTPServer
) -> None:
    from tests.support.processes import PrivateRedis

    broker = PrivateRedis(tmp_path / "redis").start()
    try:
        with stack(tmp_path / "run", postgres_url, broker.url, PROCTORQ_SMTP_URL=smtp.url) as run:
            run.start_worker()
            run.start_beat()
            _, _, seats = scenario.course(run, learners=20)
            before = [record(run, s, "started") for s in seats[:10]]
            broker.stop()
            during = [record(run, s, "started") for s in seats[10:]]  # committed, not published
            during += [record(run, s, "submitted") for s in seats]
            broker.start()  # same port, same append-only file
            wait_final(run, before + during, timeout=120)
            wait_until(lambda: scenario.nothing_pending(run), timeout=120, what="follow-ups")
            with run.uow() as session:
                statuses = session.scalars(
                    select(Attempt.status).where(Attempt.id.in_([s.attempt_id for s in seats]))
                ).all()
            assert {s.value for s in statuses} == {"submitted"}
            wait_until(lambda: len(smtp.messages) == len(seats), what="an e-mail per learner")
    finally:
        broker.stop()


@pytest.mark.parametrize("broker", ["embedded", "rabbitmq"])
def test_the_happy_path_on_other_brokers(
    tmp_path: Path, postgres_url: str, smtp: SMTPServer, broker: str
) -> None:
    broker_url = f"sqla+sqlite:///{tmp_path}/broker.sqlite3" if broker == "embedded" else AMQP_URL
    with stack(tmp_path / "run", postgres_url, broker_url, PROCTORQ_SMTP_URL=smtp.url) as run:
        if broker == "rabbitmq":
            _purge(run)
        run.start_worker()
        _, _, (seat,) = scenario.course(run)
        ids = [record(run, seat, "started"), record(run, seat, "submitted")]
        wait_final(run, ids)
        wait_until(lambda: len(smtp.messages) == 1, what="the e-mail")
        with run.uow() as session:
            assert session.get_one(Attempt, seat.attempt_id).status.value == "submitted"
            assert attempts.get_attempt(session, seat.attempt_id).completed_at is not None


def _purge(run: Stack) -> None:
    from workers.routing import QUEUES

    with run.app.connection_for_write() as connection:
        channel = connection.channel()
        for queue in QUEUES:
            try:
                channel.queue_purge(queue)
            except connection.channel_errors:
                channel = connection.channel()
        channel.close()


__all__ = ["Seat"]


def test_follow_ups_wait_out_an_smtp_and_lms_outage(
    pipeline: Stack, smtp: SMTPServer, lms: HTTPEndpoint
) -> None:
    """Longer than the delivery count used to allow (8 deliveries, one per 3 s sweep): the
    e-mails and credit changes arrive once both are back, once each, and nothing fails."""
    pipeline.start_worker()
    pipeline.start_beat()
    _, _, seats = scenario.course(pipeline, learners=3)
    smtp.stop()
    lms.down()
    ids = [record(pipeline, seat, to) for seat in seats for to in ("started", "submitted")]
    wait_final(pipeline, ids)
    time.sleep(40)
    with pipeline.uow() as session:
        rows = session.scalars(select(Outbox).where(Outbox.kind.in_(["credit", "email"]))).all()
        assert {row.state.value for row in rows} == {"pending"}
        assert all(row.tries >= 3 and row.detail for row in rows)
        assert all(row.next_try_at is not None for row in rows)
    smtp.start()
    lms.up()
    wait_until(lambda: scenario.nothing_pending(pipeline), timeout=120, what="follow-ups to arrive")
    assert sorted(m["To"] for m in smtp.messages) == sorted(
        f"l{seat.user_id}@example.test" for seat in seats
    )
    keys = [r.headers["Idempotency-Key"] for r in lms.received]
    assert len(set(keys)) == len(seats) and len(keys) == len(seats)
    with pipeline.uow() as session:
        states = set(session.scalars(select(Outbox.state)))
        assert {s.value for s in states} == {"done"}
    # Each line of the worker's log is one line of ours, not a line quoted inside another.
    for line in pipeline.logs_full().splitlines():
        assert line.count(" INFO ") + line.count(" WARNING ") <= 1, line
