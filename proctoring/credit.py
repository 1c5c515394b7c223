"""Credit requirements: kept in the database, and told to the LMS when it asks to hear."""

from __future__ import annotations

import dataclasses
import email.utils
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import httpx
from sqlalchemy import delete, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from proctoring import statuses
from proctoring.clock import utcnow
from proctoring.models import (
    Attempt,
    AttemptHistory,
    CreditRequirement,
    Exam,
    Outbox,
    OutboxKind,
    OutboxState,
    Transition,
    User,
)
from proctoring.outbox import FollowUpResult, claim, finish

NAMESPACE = "proctored_exam"
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


class RetryLater(Exception):
    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


def settle_credit(
    session: Session, outbox_ids: Sequence[int], deliver: Delivery | None
) -> FollowUpResult:
    """Apply credit follow-ups (set and clear) and, if configured, tell the LMS."""
    result = FollowUpResult()
    rows = claim(session, OutboxKind.credit, outbox_ids) + claim(
        session, OutboxKind.clear_credit, outbox_ids
    )
    changes = [(row, _apply(session, row)) for row in sorted(rows, key=lambda r: r.id)]
    for row, change in changes:
        outcome: str | None = None
        if deliver is not None and change is not None:
            try:
                outcome = deliver(change, idempotency_key=f"proctorq-credit-{row.id}")
            except RetryLater as exc:
                result.retry(row.id, exc.after)
                row.detail = str(exc)[:2000]
                continue
        if outcome is None:
            finish(row, OutboxState.done)
            result.done.append(row.id)
        else:
            finish(row, OutboxState.failed, outcome)
            result.failed.append(row.id)
    return result


def _apply(session: Session, row: Outbox) -> CreditChange | None:
    attempt = session.get_one(Attempt, row.attempt_id)
    exam = session.get_one(Exam, attempt.exam_id)
    user = session.get_one(User, attempt.user_id)
    change = CreditChange(
        user_id=attempt.user_id,
        username=user.username,
        course_id=exam.course_id,
        namespace=NAMESPACE,
        name=exam.content_id,
        status=None,
        transition_id=None,
    )
    requirement = (
        CreditRequirement.user_id == change.user_id,
        CreditRequirement.course_id == change.course_id,
        CreditRequirement.namespace == change.namespace,
        CreditRequirement.name == change.name,
    )
    if row.kind is OutboxKind.clear_credit:
        # Only the archived attempt's own requirement is cleared: a newer attempt's stays.
        owned = select(Transition.id).where(Transition.attempt_id == attempt.id)
        removed = session.execute(
            delete(CreditRequirement).where(
                *requirement, CreditRequirement.transition_id.in_(owned)
            )
        )
        return change if getattr(removed, "rowcount", 0) else None

    assert row.transition_id is not None
    transition = session.get_one(Transition, row.transition_id)
    assert transition.result_status is not None
    value = statuses.credit_value(transition.result_status)
    assert value is not None
    applied_as = session.scalar(
        select(AttemptHistory.id).where(AttemptHistory.transition_id == transition.id)
    )
    assert applied_as is not None
    _upsert(
        session,
        {
            "user_id": change.user_id,
            "course_id": change.course_id,
            "namespace": change.namespace,
            "name": change.name,
            "status": value,
            "transition_id": transition.id,
        },
        applied_as,
    )
    return dataclasses.replace(change, status=value.value, transition_id=transition.id)


def _upsert(session: Session, values: dict[str, Any], applied_as: int) -> None:
    """Insert or update; an older change never overwrites a newer one.

    Changes can arrive out of order (two credit tasks running at once). "Older" is judged by
    the order the transitions were applied in, which the history rows' ids record: a
    transition's own id is the order it was received in, and a held review is received
    before, but applied after, the requests around its submit.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = utcnow()
    statement = insert(CreditRequirement).values(**values, created_at=now, updated_at=now)
    statement = statement.on_conflict_do_update(
        index_elements=["user_id", "course_id", "namespace", "name"],
        set_={
            "status": statement.excluded.status,
            "transition_id": statement.excluded.transition_id,
            "updated_at": now,
        },
        # The subquery refers to the row already there. Written out, because a subquery
        # inside ON CONFLICT has no enclosing SELECT for SQLAlchemy to correlate it with.
        where=text(
            "(SELECT h.id FROM attempt_history AS h "
            "WHERE h.transition_id = credit_requirements.transition_id) < :applied_as"
        ).bindparams(applied_as=applied_as),
    )
    session.execute(statement)


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
        if response.is_success:
            return None
        if response.status_code == 429 or response.status_code >= 500:
            raise RetryLater(
                f"credit webhook answered {response.status_code}",
                after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        return f"credit webhook answered {response.status_code}: {response.text[:500]}"

    def close(self) -> None:
        self._client.close()


def retry_after_seconds(value: str | None) -> float | None:
    """Read a Retry-After header: seconds, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
