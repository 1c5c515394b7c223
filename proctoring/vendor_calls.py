"""Our calls to vendors speaking edx-proctoring's REST protocol, as follow-ups (docs/behaviour.md,
"Vendors that speak edx-proctoring's REST protocol").

Each call is an outbox row (kind ``vendor``, ``receiver`` the provider) recorded in the commit
of the change that causes it: an exam's registration names the exam; an attempt's
registration, status and archive name the attempt. An attempt's rows form a sequence, oldest
id first, and only its head is called; an attempt's registration also waits for its exam's.
A row is leased while it is called, outside any transaction, then its answer is recorded and
the rows waiting behind it woken. A registration that failed fails the attempt's later calls
with its reason.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config import get_settings
from proctoring import followups
from proctoring.clock import utcnow
from proctoring.db import wake
from proctoring.edx_client import ONBOARDING_WORDS, Answer, Call, obscured_user_id
from proctoring.http import RetryLater
from proctoring.models import Attempt, Exam, Outbox, OutboxKind, OutboxState, User
from proctoring.providers import provider_config
from proctoring.statuses import Status, is_pre_start

EXAM, REGISTER, STATUS, DELETE = "exam", "register", "status", "delete"
# A row waiting behind another is woken when that one ends; this is only the relay's backstop.
WAIT_BEHIND = dt.timedelta(seconds=60)


def speaks_edx_rest(provider: str | None) -> bool:
    config = provider_config(provider)
    return config is not None and config.speaks_edx_rest


def _record(session: Session, provider: str, what: dict[str, Any], **ids: int | None) -> None:
    row = Outbox(kind=OutboxKind.vendor, receiver=provider, payload=json.dumps(what), **ids)
    session.add(row)
    session.flush()
    wake(session, OutboxKind.vendor, [row.id])


def exam_changed(session: Session, exam: Exam, *, was_proctored: bool) -> None:
    """A proctored exam of an edx-rest provider was created or changed, or stopped being
    proctored: the vendor hears of it."""
    if exam.provider and speaks_edx_rest(exam.provider) and (exam.is_proctored or was_proctored):
        _record(session, exam.provider, {"call": EXAM}, exam_id=exam.id)


def attempt_created(session: Session, attempt: Attempt) -> None:
    """An attempt taking an edx-rest provider's exam as proctored is registered, unless staff
    gave its session id (registered already)."""
    if (
        attempt.provider
        and attempt.taking_as_proctored
        and attempt.external_id is None
        and speaks_edx_rest(attempt.provider)
    ):
        session.flush()
        _record_for(session, attempt, {"call": REGISTER})


def _record_for(session: Session, attempt: Attempt, what: dict[str, Any]) -> None:
    assert attempt.provider is not None
    _record(session, attempt.provider, what, attempt_id=attempt.id, exam_id=attempt.exam_id)


def _known_to_vendor(attempt: Attempt) -> bool:
    return bool(
        attempt.provider
        and (attempt.external_id is not None or attempt.taking_as_proctored)
        and speaks_edx_rest(attempt.provider)
    )


def status_applied(session: Session, attempt: Attempt, from_status: Status, to: Status) -> None:
    """``started`` (the first time), ``submitted`` and ``error`` are told to the vendor."""
    first_start = to is Status.started and is_pre_start(from_status)
    if (first_start or to in (Status.submitted, Status.error)) and _known_to_vendor(attempt):
        _record_for(session, attempt, {"call": STATUS, "status": to.value})


def attempt_archived(session: Session, attempt: Attempt) -> None:
    if _known_to_vendor(attempt):
        _record_for(session, attempt, {"call": DELETE})


# --- delivery ----------------------------------------------------------------------------------

Send = Callable[[Call], Answer]
UoW = Callable[[], AbstractContextManager[Session]]


def call_vendors(
    uow: UoW,
    outbox_ids: Sequence[int],
    send: Send,
    policy: followups.RetryPolicy,
    call_seconds: float = 10.0,
) -> followups.FollowUpResult:
    """Call each row's vendor, head of its sequence first; one row at a time."""
    result = followups.FollowUpResult()
    away: dict[str, RetryLater] = {}  # vendors that asked to be tried later, in this batch
    for row_id in sorted(set(outbox_ids)):
        with uow() as session:
            call = _lease(session, row_id, call_seconds, result)
        if call is None:
            continue
        try:
            if call.provider in away:  # not another timeout's wait for each of its rows
                raise away[call.provider]
            answer = send(call)
        except RetryLater as exc:
            away[call.provider] = exc
            with uow() as session:
                over, wait = followups.postpone(
                    session, [row_id], str(exc), policy, asked=exc.after
                )
                result.failed.extend(over)
                if not over:
                    result.postponed([row_id], wait)
            continue
        result.add(
            followups.record_answers(uow, functools.partial(_settle, row_id=row_id, answer=answer))
        )
    return result


def _lease(
    session: Session, row_id: int, call_seconds: float, result: followups.FollowUpResult
) -> Call | None:
    """The call this row makes now, its row leased for it; None when it waits or is over."""
    rows = followups.claim(session, OutboxKind.vendor, [row_id])
    if not rows:
        return None
    row = rows[0]
    what = json.loads(row.payload or "{}")
    now = utcnow()
    exam = session.get_one(Exam, row.exam_id) if row.exam_id is not None else None
    attempt = session.get(Attempt, row.attempt_id) if row.attempt_id is not None else None
    if _waits(session, row, what["call"], exam):
        followups.postpone_until(session, [row.id], now + WAIT_BEHIND)
        return None
    if what["call"] == REGISTER and attempt is not None and attempt.archived_at is not None:
        _end(session, row, OutboxState.done, "archived before it was registered", result)
        return None
    why_not = _blocked(session, row, what["call"], exam, attempt)
    if why_not is not None:
        _end(session, row, OutboxState.failed, why_not, result)
        return None
    if attempt is not None and what["call"] != REGISTER and attempt.external_id is None:
        _end(session, row, OutboxState.done, "the vendor never held this attempt", result)
        return None
    # A call is up to four requests (a token, the call, a token again after a 401, the call
    # again), each with the timeout: the lease outlasts them all.
    row.next_try_at = row.last_published_at = now + dt.timedelta(seconds=call_seconds * 5)
    if what["call"] == REGISTER:
        # What is sent, so that its answer is read as what it answers (see _settle).
        what["sent"] = EXAM if exam is not None and exam.external_id is None else REGISTER
        row.payload = json.dumps(what)
    assert row.receiver is not None
    return _call(session, row.receiver, what, exam, attempt)


def _waits(session: Session, row: Outbox, call: str, exam: Exam | None) -> bool:
    """Whether an older pending row must be called first: the attempt's own; the exam's own
    (its registration, or a change of it); and while the exam is not registered, any older
    row of the exam's attempts, since the first registration registers the exam."""
    earlier = select(Outbox.id).where(
        Outbox.kind == OutboxKind.vendor,
        Outbox.state == OutboxState.pending,
        Outbox.id < row.id,
    )
    mine = earlier.where(Outbox.attempt_id == row.attempt_id).limit(1)
    if row.attempt_id is not None and session.scalar(mine) is not None:
        return True
    exam_rows = earlier.where(Outbox.exam_id == row.exam_id, Outbox.attempt_id.is_(None))
    if session.scalar(exam_rows.limit(1)) is not None:
        return True
    if call == REGISTER and exam is not None and exam.external_id is None:
        # Registering this attempt registers the exam first: one registration at a time.
        of_the_exam = earlier.where(Outbox.exam_id == row.exam_id).limit(1)
        return session.scalar(of_the_exam) is not None
    return False


def _blocked(
    session: Session, row: Outbox, call: str, exam: Exam | None, attempt: Attempt | None
) -> str | None:
    """Why this call can never be made: the registration it needs failed."""
    if call == REGISTER and exam is not None and exam.external_id is None:
        failed = _failed_detail(session, Outbox.exam_id == exam.id, Outbox.attempt_id.is_(None))
        return f"the exam's registration failed: {failed}" if failed else None
    if call in (STATUS, DELETE) and attempt is not None and attempt.external_id is None:
        failed = _failed_detail(session, Outbox.attempt_id == attempt.id, Outbox.id < row.id)
        return f"the attempt's registration failed: {failed}" if failed else None
    if call in (STATUS, DELETE) and exam is not None and exam.external_id is None:
        failed = _failed_detail(session, Outbox.exam_id == exam.id, Outbox.attempt_id.is_(None))
        return f"the exam is not registered at the vendor{': ' + failed if failed else ''}"
    return None


def _failed_detail(session: Session, *where: Any) -> str | None:
    return session.scalar(
        select(Outbox.detail)
        .where(Outbox.kind == OutboxKind.vendor, Outbox.state == OutboxState.failed, *where)
        .order_by(Outbox.id.desc())
        .limit(1)
    )


def _call(
    session: Session, provider: str, what: dict[str, Any], exam: Exam | None, at: Attempt | None
) -> Call:
    assert exam is not None
    if what["call"] == EXAM:
        path = f"/api/v1/exam/{exam.external_id}/" if exam.external_id else "/api/v1/exam/"
        return Call(provider, "POST", path, exam_body(exam))
    assert at is not None
    if what["call"] == REGISTER:
        if exam.external_id is None:  # an exam never registered on its own: now, first
            return Call(provider, "POST", "/api/v1/exam/", exam_body(exam))
        body = attempt_body(session, provider, exam, at)
        return Call(provider, "POST", f"/api/v1/exam/{exam.external_id}/attempt/", body)
    path = f"/api/v1/exam/{exam.external_id}/attempt/{at.external_id}/"
    if what["call"] == DELETE:
        return Call(provider, "DELETE", path, done_on=frozenset({404, 405}))
    return Call(provider, "PATCH", path, {"status": what["status"]})


def exam_body(exam: Exam) -> dict[str, Any]:
    return {
        "id": exam.id,
        "course_id": exam.course_id,
        "content_id": exam.content_id,
        "external_id": exam.external_id,
        "exam_name": exam.exam_name,
        "time_limit_mins": exam.time_limit_mins,
        "is_proctored": exam.is_proctored,
        "is_practice_exam": exam.is_practice_exam,
        "is_active": exam.is_active and exam.is_proctored,
        "due_date": exam.due_date.isoformat() if exam.due_date else None,
        "hide_after_due": False,
        "backend": exam.provider,
    }


def attempt_body(session: Session, provider: str, exam: Exam, attempt: Attempt) -> dict[str, Any]:
    settings = get_settings()
    key = settings.user_obfuscation_key
    assert key is not None  # required once an edx-rest provider is configured
    user = session.get_one(User, attempt.user_id)
    minutes = exam.time_limit_mins
    if exam.due_date is not None:
        left = int((exam.due_date - utcnow()).total_seconds() // 60)
        minutes = max(0, min(minutes, left))
    return {
        "lms_host": (settings.public_url or "http://127.0.0.1:8000").rstrip("/"),
        "time_limit_mins": minutes,
        "is_sample_attempt": attempt.is_sample_attempt,
        "user_id": obscured_user_id(attempt.user_id, provider, key.get_secret_value()),
        "full_name": "",
        "email": user.email,
        "status": "created",
    }


def _settle(
    session: Session, result: followups.FollowUpResult, *, row_id: int, answer: Answer
) -> None:
    """Record the answer of the row's call, and wake what waited behind it."""
    row = session.scalars(select(Outbox).where(Outbox.id == row_id).with_for_update()).one()
    if row.state is not OutboxState.pending:
        return
    what = json.loads(row.payload or "{}")
    if answer.refused is not None:
        _end(session, row, OutboxState.failed, answer.refused, result)
        return
    exam = session.get_one(Exam, row.exam_id) if row.exam_id is not None else None
    if what["call"] == EXAM or what.get("sent") == EXAM:  # an exam's registration answered
        vendor_id = _vendor_id(answer.data)
        if vendor_id is None:
            _end(session, row, OutboxState.failed, "the vendor's answer has no id", result)
            return
        if exam is not None and exam.external_id is None:
            exam.external_id = vendor_id
        if what["call"] == REGISTER:  # the exam first; the attempt on the next try, now
            what.pop("sent")
            row.payload = json.dumps(what)
            row.next_try_at = None
            wake(session, OutboxKind.vendor, [row.id])
            return
    elif what["call"] == REGISTER:
        why = _register(session, row, answer.data)
        if why is not None:
            _end(session, row, OutboxState.failed, why, result)
            return
    _end(session, row, OutboxState.done, None, result)


def _vendor_id(data: Any) -> str | None:
    found = data.get("id") if isinstance(data, dict) else None
    return str(found)[:255] if found not in (None, "") else None


def _register(session: Session, row: Outbox, data: Any) -> str | None:
    """Take the attempt's session id from the vendor's answer; why not, if not."""
    word = data.get("status") if isinstance(data, dict) else None
    if word in ONBOARDING_WORDS:
        return f"the vendor answered {word}"
    vendor_id = _vendor_id(data)
    if vendor_id is None:
        return "the vendor's answer has no id" + (f" (status {word!r})" if word else "")
    attempt = session.get_one(Attempt, row.attempt_id)
    if attempt.external_id is None and attempt.archived_at is None:
        try:
            with session.begin_nested():
                attempt.external_id = vendor_id
                session.flush()
        except IntegrityError:
            return f"the vendor's session id {vendor_id!r} is held by another live attempt"
    return None


def _end(
    session: Session,
    row: Outbox,
    state: OutboxState,
    detail: str | None,
    result: followups.FollowUpResult,
) -> None:
    followups.finish(row, state, detail)
    (result.done if state is OutboxState.done else result.failed).append(row.id)
    session.flush()
    _wake_next(session, row)


def _wake_next(session: Session, row: Outbox) -> None:
    """Wake the rows that waited behind this one: the next of its attempt, or, for an exam's,
    the registrations of its attempts."""
    pending = select(Outbox.id).where(
        Outbox.kind == OutboxKind.vendor, Outbox.state == OutboxState.pending, Outbox.id > row.id
    )
    if row.attempt_id is not None:
        woken = list(
            session.scalars(
                pending.where(Outbox.attempt_id == row.attempt_id).order_by(Outbox.id).limit(1)
            )
        )
    else:
        woken = list(session.scalars(pending.where(Outbox.exam_id == row.exam_id)))
    followups.release(session, OutboxKind.vendor, woken)
