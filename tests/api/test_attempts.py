"""Attempts and transition requests through the API."""

from __future__ import annotations

import time

from sqlalchemy import select

from proctoring import transitions
from proctoring.db import UnitOfWork
from proctoring.models import Transition
from tests.api.conftest import Queue, World, bearer, new_id


def test_a_learner_creates_their_own_attempt(world: World) -> None:
    attempt = world.new_attempt()
    assert attempt["status"] == "created" and attempt["user_id"] == world.learner
    assert attempt["taking_as_proctored"] is True and attempt["is_sample_attempt"] is False
    assert len(attempt["attempt_code"]) >= 32
    again = world.client.post(
        f"/v1/exams/{world.exam}/attempts", json={}, headers=bearer(world.learner)
    )
    assert again.status_code == 409


def test_only_staff_create_attempts_for_others(world: World) -> None:
    url = f"/v1/exams/{world.exam}/attempts"
    by_learner = world.client.post(
        url, json={"user_id": world.other}, headers=bearer(world.learner)
    )
    assert by_learner.status_code == 403
    by_staff = world.client.post(url, json={"user_id": world.other}, headers=bearer(world.staff))
    assert by_staff.status_code == 201 and by_staff.json()["user_id"] == world.other
    unknown_exam = world.client.post(
        "/v1/exams/2147483000/attempts", json={}, headers=bearer(world.learner)
    )
    assert unknown_exam.status_code == 404


def test_reading_an_attempt(world: World) -> None:
    attempt = world.new_attempt()
    url = f"/v1/attempts/{attempt['attempt_id']}"
    assert world.client.get(url, headers=bearer(world.learner)).json() == attempt
    assert world.client.get(url, headers=bearer(world.staff)).status_code == 200
    assert world.client.get(url, headers=bearer(new_id(), staff=True)).status_code == 200
    other = world.client.get(url, headers=bearer(world.other))
    assert other.status_code == 403
    assert other.json()["detail"] == "Learners may only act on their own attempts."
    assert (
        world.client.get("/v1/attempts/9999999", headers=bearer(world.learner)).status_code == 404
    )


def test_archiving_lets_the_learner_try_again(world: World) -> None:
    attempt = world.new_attempt()
    url = f"/v1/attempts/{attempt['attempt_id']}"
    assert world.client.delete(url, headers=bearer(world.learner)).status_code == 403
    assert world.client.delete(url, headers=bearer(world.staff)).status_code == 204
    assert world.client.get(url, headers=bearer(world.learner)).status_code == 404
    assert world.client.delete(url, headers=bearer(world.staff)).status_code == 404
    posted = world.client.post(
        f"{url}/transitions", json={"to_status": "started"}, headers=bearer(world.learner)
    )
    assert posted.status_code == 404
    assert world.new_attempt()["attempt_id"] != attempt["attempt_id"]


def test_a_request_is_recorded_published_and_answered_202(
    world: World, queue: Queue, uow: UnitOfWork
) -> None:
    attempt = world.new_attempt()
    queue.clear()
    response = world.client.post(
        f"/v1/attempts/{attempt['attempt_id']}/transitions",
        json={"to_status": "started"},
        headers=bearer(world.learner),
    )
    assert response.status_code == 202
    answer = response.json()
    assert answer["state"] == "pending"
    (message,) = queue.messages("transitions")
    assert message["task"] == "proctorq.apply_transitions"
    assert message["args"] == [[answer["transition_id"]]]
    with uow() as session:
        row = session.get_one(Transition, answer["transition_id"])
        assert (row.source.value, row.actor_user_id) == ("learner", world.learner)


def test_the_same_key_returns_the_first_request(world: World) -> None:
    attempt = world.new_attempt()
    url = f"/v1/attempts/{attempt['attempt_id']}/transitions"
    headers = {**bearer(world.learner), "Idempotency-Key": "start-1"}
    first = world.client.post(url, json={"to_status": "started"}, headers=headers)
    again = world.client.post(url, json={"to_status": "started"}, headers=headers)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["transition_id"] == first.json()["transition_id"]
    other = world.client.post(url, json={"to_status": "submitted"}, headers=headers)
    assert other.status_code == 409
    assert "Idempotency-Key" in other.json()["detail"]


def test_keys_belong_to_their_caller(world: World) -> None:
    mine = world.new_attempt()
    theirs = world.new_attempt(user=world.other)
    key = {"Idempotency-Key": "same-key"}
    a = world.client.post(
        f"/v1/attempts/{mine['attempt_id']}/transitions",
        json={"to_status": "started"},
        headers={**bearer(world.learner), **key},
    )
    b = world.client.post(
        f"/v1/attempts/{theirs['attempt_id']}/transitions",
        json={"to_status": "started"},
        headers={**bearer(world.other), **key},
    )
    assert (a.status_code, b.status_code) == (202, 202)


def test_without_a_key_every_request_is_new(world: World) -> None:
    attempt = world.new_attempt()
    url = f"/v1/attempts/{attempt['attempt_id']}/transitions"
    ids = {
        world.client.post(url, json={"to_status": "started"}, headers=bearer(world.learner)).json()[
            "transition_id"
        ]
        for _ in range(3)
    }
    assert len(ids) == 3


def test_sources(world: World, uow: UnitOfWork) -> None:
    attempt = world.new_attempt()
    url = f"/v1/attempts/{attempt['attempt_id']}/transitions"
    staff = world.client.post(url, json={"to_status": "verified"}, headers=bearer(world.staff))
    relayed = world.client.post(
        url,
        json={"to_status": "started", "acting_for_learner": True},
        headers=bearer(new_id(), staff=True),
    )
    stranger = world.client.post(url, json={"to_status": "started"}, headers=bearer(world.other))
    assert stranger.status_code == 403
    with uow() as session:
        rows = session.scalars(
            select(Transition)
            .where(Transition.attempt_id == attempt["attempt_id"])
            .order_by(Transition.id)
        ).all()
        assert [r.source.value for r in rows] == ["staff", "learner"]
        assert rows[0].id == staff.json()["transition_id"]
        assert rows[1].id == relayed.json()["transition_id"]


def test_reading_transitions_and_waiting(world: World, uow: UnitOfWork) -> None:
    attempt = world.new_attempt()
    url = f"/v1/attempts/{attempt['attempt_id']}/transitions"
    posted = world.client.post(url, json={"to_status": "started"}, headers=bearer(world.learner))
    transition_id = posted.json()["transition_id"]
    pending = world.client.get(
        f"/v1/transitions/{transition_id}?wait=0.3", headers=bearer(world.learner)
    )
    assert pending.json()["state"] == "pending"
    with uow() as session:  # what a worker does
        transitions.apply_transitions(session, [transition_id])
    done = world.client.get(
        f"/v1/transitions/{transition_id}?wait=30", headers=bearer(world.learner)
    )
    body = done.json()
    assert (body["state"], body["from_status"], body["result_status"]) == (
        "applied",
        "created",
        "started",
    )
    assert body["received_at"].endswith("Z") and body["applied_at"]
    listed = world.client.get(url, headers=bearer(world.staff)).json()
    assert [t["transition_id"] for t in listed] == [transition_id]
    assert (
        world.client.get(
            f"/v1/transitions/{transition_id}", headers=bearer(world.other)
        ).status_code
        == 403
    )
    assert (
        world.client.get(
            f"/v1/transitions/{transition_id}?wait=31", headers=bearer(world.learner)
        ).status_code
        == 422
    )


def test_a_wait_answers_when_the_request_is_applied_meanwhile(
    world: World, uow: UnitOfWork
) -> None:
    import threading

    attempt = world.new_attempt()
    url = f"/v1/attempts/{attempt['attempt_id']}/transitions"
    posted = world.client.post(url, json={"to_status": "started"}, headers=bearer(world.learner))
    transition_id = posted.json()["transition_id"]
    answers: list[dict[str, object]] = []
    waiting = threading.Thread(
        target=lambda: answers.append(
            world.client.get(
                f"/v1/transitions/{transition_id}?wait=20", headers=bearer(world.learner)
            ).json()
        )
    )
    waiting.start()
    time.sleep(0.5)  # the wait has read it pending and polls
    with uow() as session:  # what a worker does
        transitions.apply_transitions(session, [transition_id])
    waiting.join(30)
    assert answers and answers[0]["state"] == "applied", answers


def test_reading_an_overdue_attempt_times_it_out(world: World, uow: UnitOfWork) -> None:
    import datetime as dt

    from proctoring.models import Attempt

    attempt = world.new_attempt()
    with uow() as session:
        row = session.get_one(Attempt, attempt["attempt_id"])
        row.status = row.status.__class__("started")
        row.started_at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
        row.allowed_time_limit_mins = 60
    world.client.get(f"/v1/attempts/{attempt['attempt_id']}", headers=bearer(world.learner))
    listed = world.client.get(
        f"/v1/attempts/{attempt['attempt_id']}/transitions", headers=bearer(world.learner)
    ).json()
    assert [(t["source"], t["to_status"]) for t in listed] == [("system", "timed_out")]


def test_credit_is_read_by_the_learner_and_course_staff(world: World, uow: UnitOfWork) -> None:
    from proctoring import credit
    from proctoring.models import Outbox

    attempt = world.new_attempt()
    url = f"/v1/attempts/{attempt['attempt_id']}/transitions"
    t = world.client.post(url, json={"to_status": "declined"}, headers=bearer(world.learner))
    with uow() as session:
        transitions.apply_transitions(session, [t.json()["transition_id"]])
    with uow() as session:
        rows = session.scalars(
            select(Outbox.id).where(
                Outbox.kind == "credit", Outbox.attempt_id == attempt["attempt_id"]
            )
        ).all()
    credit.settle_credit(uow, rows, None)
    mine = world.client.get(f"/v1/users/{world.learner}/credit", headers=bearer(world.learner))
    assert mine.json() == [
        {
            "course_id": world.course,
            "namespace": "proctored_exam",
            "name": mine.json()[0]["name"],
            "status": "failed",
        }
    ]
    as_staff = world.client.get(
        f"/v1/users/{world.learner}/credit",
        params={"course_id": world.course},
        headers=bearer(world.staff),
    )
    assert as_staff.json() == mine.json()
    no_course = world.client.get(f"/v1/users/{world.learner}/credit", headers=bearer(world.staff))
    assert (no_course.status_code, no_course.json()["detail"]) == (
        403,
        "could not determine the course_id",
    )
    assert (
        world.client.get(
            f"/v1/users/{world.learner}/credit", headers=bearer(world.other)
        ).status_code
        == 403
    )


def test_a_learner_may_not_name_a_vendor_session(world: World, uow: UnitOfWork) -> None:
    victim = world.new_attempt(exam=world.exam, external_id=f"victim-session-{world.exam}")
    url = f"/v1/exams/{world.exam}/attempts"
    for body in (
        {"external_id": victim["external_id"]},
        {"external_id": "any-session", "user_id": world.other},
    ):
        taken = world.client.post(url, json=body, headers=bearer(world.other))
        assert taken.status_code == 403, taken.text
        assert "external_id" in taken.json()["detail"]
    # Without one the learner may create their attempt; staff may give them a session.
    assert world.client.post(url, json={}, headers=bearer(world.other)).status_code == 201


def test_a_session_already_held_is_a_409(world: World) -> None:
    session_id = f"held-session-{new_id()}"
    first = world.new_attempt(external_id=session_id)
    other_exam = world.new_exam()
    url = f"/v1/exams/{other_exam}/attempts"
    body = {"user_id": world.other, "external_id": session_id}
    second = world.client.post(url, json=body, headers=bearer(world.staff))
    assert second.status_code == 409, second.text
    assert session_id in second.json()["detail"]
    archived = world.client.delete(
        f"/v1/attempts/{first['attempt_id']}", headers=bearer(world.staff)
    )
    assert archived.status_code == 204
    again = world.client.post(url, json=body, headers=bearer(world.staff))
    assert again.status_code == 201, again.text


def test_an_attempt_at_a_timed_exam_is_not_proctored(world: World) -> None:
    timed = world.new_exam(is_proctored=False)
    answer = world.client.post(
        f"/v1/exams/{timed}/attempts",
        json={"taking_as_proctored": True},
        headers=bearer(world.learner),
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["taking_as_proctored"] is False
