"""Attempts: create, find, archive, and the lock that makes one writer per attempt."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from proctoring import vendor_calls
from proctoring.clock import utcnow
from proctoring.db import upsert_insert, wake
from proctoring.errors import Conflict, Invalid, NotFound
from proctoring.exams import get_exam
from proctoring.models import Attempt, Exam, Outbox, OutboxKind
from proctoring.people import get_user
from proctoring.statuses import Status

ATTEMPT_CODE_BYTES = 24


def new_attempt_code() -> str:
    """Random and unguessable: a vendor holding it can act on the attempt."""
    return secrets.token_urlsafe(ATTEMPT_CODE_BYTES)


def create_attempt(
    session: Session,
    *,
    exam_id: int,
    user_id: int,
    taking_as_proctored: bool,
    external_id: str | None = None,
) -> Attempt:
    """A new attempt, always ``created``. Only staff or the LMS give ``external_id`` (the
    caller's business, checked before): the vendor's session id, held by one live attempt of
    that vendor at most."""
    exam = get_exam(session, exam_id)
    get_user(session, user_id)
    if not exam.is_active:
        raise Invalid(f"exam {exam_id} is not active")
    attempt = Attempt(
        **_new_attempt_fields(
            exam, user_id, taking_as_proctored=taking_as_proctored, external_id=external_id
        )
    )
    if external_id is not None and _session_holder(session, exam.provider, external_id):
        raise Conflict(_session_taken(exam.provider, external_id))
    try:
        with session.begin_nested():
            session.add(attempt)
    except IntegrityError:
        # A writer raced us to one of the two unique rules; it has committed by now.
        if live_attempt(session, exam_id, user_id) is None and external_id is not None:
            raise Conflict(_session_taken(exam.provider, external_id)) from None
        raise Conflict(
            f"user {user_id} already has an attempt at exam {exam_id}; "
            "staff archive it before the learner may try again"
        ) from None
    vendor_calls.attempt_created(session, attempt)
    return attempt


def _session_holder(session: Session, provider: str | None, external_id: str) -> int | None:
    if provider is None:
        return None
    return session.scalar(
        select(Attempt.id).where(
            Attempt.provider == provider,
            Attempt.external_id == external_id,
            Attempt.archived_at.is_(None),
        )
    )


def _session_taken(provider: str | None, external_id: str) -> str:
    return (
        f"the session id {external_id!r} of provider {provider!r} is already held by a live "
        "attempt; staff archive that attempt before another may take it"
    )


def attempts_for_cascades(
    session: Session, wanted: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], int]:
    """The live attempt of each (exam, learner) a cascaded decline reaches, made where the
    learner never started one (created, not taken as proctored). A few statements for any
    number of them.

    Another writer may create the same attempt at the same moment (the learner clicking
    start): the unique index decides, and the loser takes the winner's attempt.
    """
    pairs = sorted(set(wanted))
    if not pairs:
        return {}
    found = _live_attempts(session, pairs)
    missing = [p for p in pairs if p not in found]
    if missing:
        exams = {
            e.id: e
            for e in session.scalars(select(Exam).where(Exam.id.in_({e for e, _ in missing})))
        }
        now = utcnow()
        insert = upsert_insert(session)
        made = session.execute(
            insert(Attempt)
            .on_conflict_do_nothing(
                index_elements=["exam_id", "user_id"],
                index_where=Attempt.archived_at.is_(None),
            )
            .returning(Attempt.id, Attempt.exam_id, Attempt.user_id),
            [
                {
                    **_new_attempt_fields(
                        exams[exam_id], user_id, taking_as_proctored=False, external_id=None
                    ),
                    "created_at": now,
                    "updated_at": now,
                }
                for exam_id, user_id in missing
            ],
        ).all()
        found.update({(e, u): i for i, e, u in made})
        raced = [p for p in missing if p not in found]
        if raced:
            found.update(_live_attempts(session, raced))
    return found


def _live_attempts(
    session: Session, pairs: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], int]:
    rows = session.execute(
        select(Attempt.id, Attempt.exam_id, Attempt.user_id).where(
            tuple_(Attempt.exam_id, Attempt.user_id).in_(pairs), Attempt.archived_at.is_(None)
        )
    ).all()
    return {(e, u): i for i, e, u in rows}


def _new_attempt_fields(
    exam: Exam, user_id: int, *, taking_as_proctored: bool, external_id: str | None
) -> dict[str, Any]:
    """A new attempt's columns, whether a learner asks for it or a cascade makes it."""
    return {
        "exam_id": exam.id,
        "user_id": user_id,
        "status": Status.created,
        "attempt_code": new_attempt_code(),
        "external_id": external_id,
        "provider": exam.provider,
        # An exam that is not proctored is taken as a timed exam, whatever was asked: no
        # "will be reviewed" e-mail, no vendor review applies to it.
        "taking_as_proctored": taking_as_proctored and exam.is_proctored,
        "is_sample_attempt": exam.is_practice_exam,
    }


def get_attempt(session: Session, attempt_id: int, *, include_archived: bool = False) -> Attempt:
    attempt = session.get(Attempt, attempt_id)
    if attempt is None or (attempt.archived_at is not None and not include_archived):
        raise NotFound(f"attempt {attempt_id} does not exist")
    return attempt


def live_attempt(
    session: Session, exam_id: int, user_id: int, *, lock: bool = False
) -> Attempt | None:
    query = select(Attempt).where(
        Attempt.exam_id == exam_id, Attempt.user_id == user_id, Attempt.archived_at.is_(None)
    )
    if lock:
        query = query.with_for_update()
    return session.scalar(query)


def lock_attempts(
    session: Session, attempt_ids: Sequence[int], *, skip_locked: bool = False
) -> list[Attempt]:
    """Lock attempts for writing, in id order so that two lockers never deadlock.

    PostgreSQL: SELECT … FOR UPDATE. It also waits for every transaction still inserting a
    request for these attempts (their foreign-key check holds a KEY SHARE lock), so what the
    locker then reads as pending is complete: nothing received earlier can commit later.
    SQLite: the transaction already holds the database's write lock.

    ``skip_locked`` leaves out attempts another transaction holds, instead of waiting.
    """
    if not attempt_ids:
        return []
    return list(
        session.scalars(
            select(Attempt)
            .where(Attempt.id.in_(sorted(set(attempt_ids))))
            .order_by(Attempt.id)
            .with_for_update(skip_locked=skip_locked)
            .execution_options(populate_existing=True)
        )
    )


def find_attempt_for_vendor(
    session: Session, provider: str, *, attempt_code: str | None, external_id: str | None
) -> Attempt:
    """The attempt a vendor names; another vendor's is not found.

    By ``attempt_code``: that attempt, archived or not. By ``external_id``: the one live
    attempt of this vendor holding the session (a unique index keeps it one); an archived
    attempt no longer holds its session, nor does a declined one, which lost it.
    """
    query = select(Attempt).where(Attempt.provider == provider)
    if attempt_code is not None:
        query = query.where(Attempt.attempt_code == attempt_code)
    elif external_id is not None:
        query = query.where(Attempt.external_id == external_id, Attempt.archived_at.is_(None))
    else:
        raise Invalid("a review names its attempt by attempt_code or external_id")
    attempt = session.scalar(query)
    if attempt is None:
        raise NotFound(f"provider {provider!r} has no such attempt")
    return attempt


def archive_attempt(session: Session, attempt_id: int) -> Attempt:
    """Archive so the learner may try again; the credit requirement is cleared as a follow-up."""
    get_attempt(session, attempt_id)
    (attempt,) = lock_attempts(session, [attempt_id])
    if attempt.archived_at is not None:
        raise NotFound(f"attempt {attempt_id} does not exist")
    attempt.archived_at = utcnow()
    outbox = Outbox(kind=OutboxKind.clear_credit, attempt_id=attempt.id)
    session.add(outbox)
    session.flush()
    wake(session, OutboxKind.clear_credit, [outbox.id])
    vendor_calls.attempt_archived(session, attempt)
    return attempt


def attempts_for_user(session: Session, user_id: int) -> Sequence[Attempt]:
    return session.scalars(
        select(Attempt)
        .where(Attempt.user_id == user_id, Attempt.archived_at.is_(None))
        .order_by(Attempt.id)
    ).all()
