"""Credit requirements: kept in the database, and told to the LMS when it asks to hear."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import httpx
from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from proctoring import events, followups, statuses
from proctoring.clock import utcnow
from proctoring.db import upsert_insert
from proctoring.http import RetryLater, judge_answer, retry_after_seconds
from proctoring.models import (
    AttemptHistory,
    CreditRequirement,
    Outbox,
    OutboxKind,
    OutboxState,
    Transition,
)

NAMESPACE = "proctored_exam"
__all__ = ["CreditWebhook", "RetryLater", "retry_after_seconds", "settle_credit"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CreditChange:
    """What the LMS is told; ``status`` None means the requirement was cleared."""

    user_id: int
    username: str
    course_id: str
    namespace: str
    name: str
    status: str | None
    transition_id: int | None


class Delivery(Protocol):
    """Tells the LMS about a change. Returns None when done, else why it failed for good;
    raises RetryLater when it should be tried again."""

    def __call__(self, change: CreditChange, idempotency_key: str) -> str | None: ...


def settle_credit(
    uow: Callable[[], AbstractContextManager[Session]],
    outbox_ids: Sequence[int],
    deliver: Delivery | None,
    policy: followups.RetryPolicy | None = None,
    lease_seconds: float = 300.0,
) -> followups.FollowUpResult:
    """Apply credit follow-ups (set and clear) and, if configured, tell the LMS.

    Two short transactions, none held open while the LMS answers:

    1. the requirements are written (a few statements whatever the batch's size) and, for the
       LMS, each change is kept on its row as it will be sent, and the row leased for the
       length of the calls, so no other delivery takes it meanwhile. A retry sends what was
       kept; the local write is never undone by an LMS that hangs or is away.
    2. the LMS's answers are recorded: done, failed for good, or tried again later by the
       policy. After a try that should be repeated, the rest of the batch is not tried: the
       LMS is away for them too.
    """
    policy = policy or followups.RetryPolicy()
    result = followups.FollowUpResult()
    with uow() as session:
        outgoing = _write(session, outbox_ids, deliver is not None, lease_seconds, result)
    if not outgoing or deliver is None:
        return result
    answers: dict[int, str | None] = {}
    later: tuple[str, float | None] | None = None
    for row_id, change in outgoing:
        if later is not None:
            break
        try:
            answers[row_id] = deliver(change, idempotency_key=f"proctorq-credit-{row_id}")
        except RetryLater as exc:
            later = (str(exc), exc.after)
    waiting = [row_id for row_id, _ in outgoing if row_id not in answers]

    def record(session: Session, recorded: followups.FollowUpResult) -> None:
        done = [row_id for row_id, answer in answers.items() if answer is None]
        _finish_done(session, done)
        recorded.done.extend(done)
        for row_id, answer in answers.items():
            if answer is not None:
                followups.fail_outbox(session, [row_id], answer)
                recorded.failed.append(row_id)
        if later is not None:
            reason, asked = later
            over, wait = followups.postpone(session, waiting, reason, policy, asked=asked)
            recorded.failed.extend(over)
            recorded.postponed([i for i in waiting if i not in over], wait)

    result.add(followups.record_answers(uow, record))
    return result


def _write(
    session: Session,
    outbox_ids: Sequence[int],
    tell_lms: bool,
    lease_seconds: float,
    result: followups.FollowUpResult,
) -> list[tuple[int, CreditChange]]:
    """Write the batch's requirements; return the changes still to be told to the LMS."""
    rows = sorted(
        followups.claim(session, OutboxKind.credit, outbox_ids)
        + followups.claim(session, OutboxKind.clear_credit, outbox_ids),
        key=lambda r: r.id,
    )
    fresh = [row for row in rows if row.payload is None]
    changes: dict[int, CreditChange | None] = {}
    if fresh:
        facts = followups.FollowUpContext(session, fresh)
        changes = {row.id: _change(facts, row) for row in fresh if row.kind is OutboxKind.credit}
        _upsert(session, [c for c in changes.values() if c is not None])
        for row in fresh:
            if row.kind is OutboxKind.clear_credit:
                changes[row.id] = _clear(session, _change(facts, row), row.attempt_id)
        _record_events(session, fresh, changes)
    for row in rows:
        if row.payload is not None:
            changes[row.id] = CreditChange(**json.loads(row.payload))
    outgoing: list[tuple[int, CreditChange]] = []
    lease = utcnow() + dt.timedelta(seconds=lease_seconds)
    for row in rows:
        change = changes[row.id]
        if not tell_lms or change is None:
            followups.finish(row, OutboxState.done)
            result.done.append(row.id)
            continue
        row.payload = json.dumps(asdict(change))
        row.next_try_at = row.last_published_at = lease
        outgoing.append((row.id, change))
    return outgoing


def _record_events(
    session: Session, rows: Sequence[Outbox], changes: dict[int, CreditChange | None]
) -> None:
    """A `credit.changed` event for each change written, in the commit that writes it: not
    for one the upsert refused as older than what the table holds (another credit task got
    there first), nor for one a later change of the same batch replaced."""
    if not events.receivers_of(events.CREDIT_CHANGED):
        return
    held = _held_transitions(session, [c for c in changes.values() if c is not None])
    recorded: list[dict[str, Any]] = []
    for row in rows:
        change = changes[row.id]
        if change is None:
            continue
        if row.kind is OutboxKind.credit and held.get(_key(change)) != change.transition_id:
            continue
        recorded += events.credit_changed(row.attempt_id, asdict(change), change.transition_id)
    events.insert(session, recorded)


def _key(change: CreditChange) -> tuple[int, str, str, str]:
    return (change.user_id, change.course_id, change.namespace, change.name)


def _held_transitions(
    session: Session, changes: Sequence[CreditChange]
) -> dict[tuple[int, str, str, str], int | None]:
    """The transition each of these requirements now holds (after this batch's upsert)."""
    if not changes:
        return {}
    wanted = {_key(c) for c in changes}
    found = session.execute(
        select(
            CreditRequirement.user_id,
            CreditRequirement.course_id,
            CreditRequirement.namespace,
            CreditRequirement.name,
            CreditRequirement.transition_id,
        ).where(
            CreditRequirement.user_id.in_({k[0] for k in wanted}),
            CreditRequirement.course_id.in_({k[1] for k in wanted}),
        )
    )
    return {
        (user, course, namespace, name): transition
        for user, course, namespace, name, transition in found
        if (user, course, namespace, name) in wanted
    }


def _finish_done(session: Session, outbox_ids: Sequence[int]) -> None:
    if outbox_ids:
        session.execute(
            update(Outbox)
            .where(Outbox.id.in_(outbox_ids), Outbox.state == OutboxState.pending)
            .values(state=OutboxState.done, done_at=utcnow(), detail=None)
        )


def _change(facts: followups.FollowUpContext, row: Outbox) -> CreditChange:
    attempt, exam = facts.attempt(row), facts.exam(row)
    change = CreditChange(
        user_id=attempt.user_id,
        username=facts.user(row).username,
        course_id=exam.course_id,
        namespace=NAMESPACE,
        name=exam.content_id,
        status=None,
        transition_id=None,
    )
    if row.kind is OutboxKind.clear_credit:
        return change
    value = statuses.credit_value(facts.result(row))
    assert value is not None
    return dataclasses.replace(change, status=value.value, transition_id=row.transition_id)


def _clear(session: Session, change: CreditChange, attempt_id: int) -> CreditChange | None:
    """Only the archived attempt's own requirement is cleared: a newer attempt's stays."""
    owned = select(Transition.id).where(Transition.attempt_id == attempt_id)
    removed = session.execute(
        delete(CreditRequirement).where(
            CreditRequirement.user_id == change.user_id,
            CreditRequirement.course_id == change.course_id,
            CreditRequirement.namespace == change.namespace,
            CreditRequirement.name == change.name,
            CreditRequirement.transition_id.in_(owned),
        )
    )
    return change if getattr(removed, "rowcount", 0) else None


# Changes can arrive out of order (two credit tasks running at once), so an older one must
# never overwrite a newer one. "Older" is the order the transitions were applied in, which the
# history rows' ids record: a transition's own id is the order it was received in, and a held
# review is received before, but applied after, the requests around its submit. Written out,
# because ON CONFLICT's subqueries have no enclosing SELECT for SQLAlchemy to correlate with.
_NEWER = text(
    "(SELECT h.id FROM attempt_history AS h "
    " WHERE h.transition_id = credit_requirements.transition_id) "
    "< (SELECT h.id FROM attempt_history AS h WHERE h.transition_id = excluded.transition_id)"
)


def _upsert(session: Session, changes: Sequence[CreditChange]) -> None:
    """Insert or update every requirement of the batch: multi-row statements from one
    compiled one (see cascade.py)."""
    if not changes:
        return
    latest: dict[tuple[int, str, str, str], CreditChange] = {}
    for change in changes:  # one row per requirement: the last applied of the batch
        key = _key(change)
        if key not in latest or _applied_after(session, change, latest[key]):
            latest[key] = change
    insert = upsert_insert(session)
    now = utcnow()
    statement = insert(CreditRequirement)
    statement = statement.on_conflict_do_update(
        index_elements=["user_id", "course_id", "namespace", "name"],
        set_={
            "status": statement.excluded.status,
            "transition_id": statement.excluded.transition_id,
            "updated_at": statement.excluded.updated_at,
        },
        where=_NEWER,
    )
    session.execute(
        statement,
        [
            {
                "user_id": c.user_id,
                "course_id": c.course_id,
                "namespace": c.namespace,
                "name": c.name,
                "status": c.status,
                "transition_id": c.transition_id,
                "created_at": now,
                "updated_at": now,
            }
            for c in latest.values()
        ],
    )


def _applied_after(session: Session, one: CreditChange, other: CreditChange) -> bool:
    """Rare (two changes of one requirement in one batch): ask the history which came last."""
    order = dict(
        session.execute(
            select(AttemptHistory.transition_id, AttemptHistory.id).where(
                AttemptHistory.transition_id.in_([one.transition_id, other.transition_id])
            )
        ).all()
    )
    assert one.transition_id is not None
    assert other.transition_id is not None
    return bool(order[one.transition_id] > order[other.transition_id])


def credit_of_user(
    session: Session, user_id: int, course_id: str | None = None
) -> Sequence[CreditRequirement]:
    query = select(CreditRequirement).where(CreditRequirement.user_id == user_id)
    if course_id is not None:
        query = query.where(CreditRequirement.course_id == course_id)
    return session.scalars(
        query.order_by(CreditRequirement.course_id, CreditRequirement.name)
    ).all()


class CreditWebhook:
    """POSTs each change to the LMS with the same Idempotency-Key on every retry."""

    def __init__(self, url: str, timeout: float = 10.0, client: httpx.Client | None = None):
        self.url = url
        self._client = client or httpx.Client(timeout=timeout)

    def __call__(self, change: CreditChange, idempotency_key: str) -> str | None:
        try:
            response = self._client.post(
                self.url, json=asdict(change), headers={"Idempotency-Key": idempotency_key}
            )
        except httpx.HTTPError as exc:
            raise RetryLater(f"credit webhook unreachable: {type(exc).__name__}") from exc
        return judge_answer(response, "credit webhook")

    def close(self) -> None:
        self._client.close()
