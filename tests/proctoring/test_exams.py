"""Exams, attempts, users, courses and staff: the records the rules work on."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from proctoring import attempts, exams, people
from proctoring.errors import Conflict, Invalid, NotFound
from proctoring.models import Outbox, OutboxKind, User
from proctoring.statuses import Status
from tests.support import factories as f

COURSE = "course-v1:proctorq+Exams+2026"


def test_create_and_find_an_exam(session: Session) -> None:
    exam = f.exam(session, COURSE, content_id="block-v1:final", provider=None)
    assert exam.provider == "acme"  # the default provider
    assert (exam.is_proctored, exam.is_practice_exam, exam.is_active) == (True, False, True)
    assert exams.get_exam(session, exam.id) is exam
    assert exams.get_exam_by_content(session, COURSE, "block-v1:final") is exam
    with pytest.raises(NotFound):
        exams.get_exam(session, exam.id + 1000)
    with pytest.raises(NotFound):
        exams.get_exam_by_content(session, COURSE, "block-v1:other")


def test_a_duplicate_content_id_in_a_course_is_a_conflict(session: Session) -> None:
    f.exam(session, COURSE, content_id="block-v1:dup")
    with pytest.raises(Conflict):
        f.exam(session, COURSE, content_id="block-v1:dup")
    f.exam(session, "course-v1:proctorq+Other+2026", content_id="block-v1:dup")


def test_an_unknown_provider_is_refused(session: Session) -> None:
    with pytest.raises(Invalid):
        f.exam(session, COURSE, provider="nobody")


def test_update_changes_only_the_given_fields(session: Session) -> None:
    exam = f.exam(session, COURSE, exam_name="Before", time_limit_mins=30)
    exams.update_exam(session, exam.id, {"exam_name": "After", "is_active": False})
    assert (exam.exam_name, exam.time_limit_mins, exam.is_active) == ("After", 30, False)
    with pytest.raises(ValueError, match="cannot be changed"):
        exams.update_exam(session, exam.id, {"course_id": "x"})


def test_listing_a_course(session: Session) -> None:
    active = f.exam(session, COURSE)
    inactive = f.exam(session, COURSE, is_active=False)
    practice = f.exam(session, COURSE, is_practice_exam=True)
    f.exam(session, COURSE, is_practice_exam=True, is_proctored=False)
    all_ids = [e.id for e in exams.list_course_exams(session, COURSE)]
    assert active.id in all_ids
    assert inactive.id in all_ids
    assert inactive.id not in [
        e.id for e in exams.list_course_exams(session, COURSE, active_only=True)
    ]
    assert [e.id for e in exams.list_practice_exams(session, COURSE)] == [practice.id]


def test_attempts_start_created_with_an_unguessable_code(session: Session) -> None:
    practice = f.exam(session, COURSE, is_practice_exam=True)
    one = f.attempt(session, practice)
    two = f.attempt(session, practice)
    assert one.status is Status.created
    assert one.is_sample_attempt
    assert one.attempt_code != two.attempt_code
    assert len(one.attempt_code) >= 32


def test_one_live_attempt_per_exam_and_user(session: Session) -> None:
    learner, exam = f.user(session), f.exam(session, COURSE)
    first = f.attempt(session, exam, learner)
    with pytest.raises(Conflict):
        f.attempt(session, exam, learner)
    archived = attempts.archive_attempt(session, first.id)
    assert archived.archived_at is not None
    second = f.attempt(session, exam, learner)
    assert attempts.live_attempt(session, exam.id, learner.user_id) is second
    assert attempts.get_attempt(session, first.id, include_archived=True) is first
    with pytest.raises(NotFound):
        attempts.get_attempt(session, first.id)
    with pytest.raises(NotFound):
        attempts.archive_attempt(session, first.id)
    clears = session.scalars(select(Outbox).where(Outbox.kind == OutboxKind.clear_credit)).all()
    assert [c.attempt_id for c in clears] == [first.id]


def test_an_attempt_needs_a_known_user_and_an_active_exam(session: Session) -> None:
    exam = f.exam(session, COURSE)
    with pytest.raises(NotFound):
        attempts.create_attempt(session, exam_id=exam.id, user_id=999_999, taking_as_proctored=True)
    exams.update_exam(session, exam.id, {"is_active": False})
    with pytest.raises(Invalid):
        f.attempt(session, exam)


def test_a_token_refreshes_its_user_in_one_statement(session: Session) -> None:
    connection = session.connection()
    people.refresh_user(connection, 43, "grace", "grace@example.test", is_staff=False)
    first = session.get_one(User, 43)
    created, updated = first.created_at, first.updated_at
    people.refresh_user(connection, 43, "grace", "grace@example.test", is_staff=False)
    same = session.get_one(User, 43, populate_existing=True)
    assert same.updated_at == updated, "the same claims write nothing"
    people.refresh_user(connection, 43, "grace.h", "gh@example.test", is_staff=True)
    changed = session.get_one(User, 43, populate_existing=True)
    assert (changed.username, changed.email, changed.is_staff) == (
        "grace.h",
        "gh@example.test",
        True,
    )
    assert changed.created_at == created
    assert changed.updated_at > updated


def test_users_are_upserted_and_staff_granted(session: Session) -> None:
    user = people.upsert_user(session, 42, "ada", "ada@example.test")
    people.upsert_user(session, 42, "ada.l", "ada@example.test")
    assert user.username == "ada.l"
    assert not user.is_staff
    people.upsert_user(session, 42, "ada.l", "ada@example.test", is_staff=True)
    assert user.is_staff
    people.grant_course_staff(session, COURSE, 42)
    people.grant_course_staff(session, COURSE, 42)
    assert people.is_course_staff(session, COURSE, 42)
    assert people.course_staff_ids(session, COURSE) == [42]
    assert people.revoke_course_staff(session, COURSE, 42)
    assert not people.revoke_course_staff(session, COURSE, 42)
    assert not people.is_course_staff(session, COURSE, 42)


def test_a_course_has_a_name_and_a_contact(session: Session) -> None:
    course = people.put_course(session, COURSE, name="Rockets", contact_url="https://x.test/c")
    assert (course.name, course.contact_url) == ("Rockets", "https://x.test/c")
