"""The batch writer: apply the pending requests of locked attempts, in one transaction.

docs/behaviour.md, "Applying a transition". The rules of each step are in proctoring/rules.py;
this module reads what they need, writes what they decide (status, history, follow-ups, held
reviews) and keeps one attempt's failure its own.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy.exc
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from proctoring import draining, events, statuses, vendor_calls
from proctoring.attempts import attempts_for_cascades, lock_attempts
from proctoring.clock import utcnow
from proctoring.db import WakeupKind, wake
from proctoring.ledger import INBOX
from proctoring.models import (
    Attempt,
    AttemptHistory,
    Exam,
    Outbox,
    OutboxKind,
    Review,
    ReviewState,
    Transition,
    TransitionState,
)
from proctoring.rules import REVIEW_NOT_APPLIED, allowed_minutes, decide
from proctoring.statuses import Source, Status
from proctoring.transitions import review_key

log = logging.getLogger(__name__)


def apply_transitions(
    session: Session, transition_ids: Iterable[int], *, drain: int = 0
) -> list[Transition]:
    """Apply every pending request of the attempts these requests belong to.

    With ``drain``, also the attempts of up to that many other pending requests, oldest
    first: one task and one transaction then apply a whole backlog, and the messages for those
    requests find theirs done (they drain what waits then, with no ids of their own left).

    The named attempts are locked waiting for any holder; the drained ones with SKIP LOCKED,
    so a batch never waits for a batch over work it was not asked for. A drained attempt held
    by another transaction is mostly being applied by it, but not always: a follow-up that
    inserts a row naming the attempt (an e-mail's claim, an event) holds it too (a foreign
    key's KEY SHARE lock). A skipped attempt that FOR NO KEY UPDATE can still lock is held
    by such a one only, and no applier will apply its requests. So the first request a drain
    leaves out, held that way or beyond its batch, is woken after the commit: the API sends no
    message while an apply message waits in the queue (workers/publisher.py), and the drains
    carry a backlog on themselves. That message names the request and waits for the holder.
    An attempt held by a write that is not an applier's (archiving it, a vendor call recording
    its session) looks like an applier's: a request left out then waits for the sweep.

    A named request is never missed: its message is sent after its commit, an applier reads
    an attempt's pending requests after it has locked the attempt, and a request is recorded
    under a KEY SHARE lock that an applier's lock waits for.

    The caller's transaction holds the attempts' locks until it commits; follow-ups are outbox
    rows in the same transaction, published after the commit. Returns what was applied.
    """
    ids = sorted(set(transition_ids))
    attempt_ids: set[int] = set()
    if ids:
        rows = session.execute(
            select(Transition.id, Transition.attempt_id).where(
                Transition.id.in_(ids), Transition.state == TransitionState.pending
            )
        ).all()
        attempt_ids = {attempt_id for _, attempt_id in rows if attempt_id is not None}
        attempt_ids |= _attempts_for_cascades(
            session, [transition_id for transition_id, attempt_id in rows if attempt_id is None]
        )
    attempts = lock_attempts(session, sorted(attempt_ids))
    left_out = None
    if drain:
        drained, left_out = draining.take_along(session, drain, exclude=attempt_ids)
        attempts += drained
    done = apply_pending(session, attempts, named=attempt_ids)
    if left_out is not None:
        wake(session, WakeupKind.apply, [left_out])
    return done


def _attempts_for_cascades(session: Session, transition_ids: Sequence[int]) -> set[int]:
    """Give cascades to never-attempted exams their attempts: the learner's, or new ones.

    The requests are locked first, so two workers given the same ones do this once.
    """
    if not transition_ids:
        return set()
    waiting = session.scalars(
        select(Transition)
        .where(Transition.id.in_(transition_ids), Transition.attempt_id.is_(None))
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    made = attempts_for_cascades(session, [(t.exam_id, t.user_id) for t in waiting])
    for transition in waiting:
        transition.attempt_id = made[(transition.exam_id, transition.user_id)]
    session.flush()
    return set(made.values())


_WHOLE_TRANSACTION = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
)


def apply_pending(
    session: Session, attempts: Sequence[Attempt], *, named: Collection[int] | None = None
) -> list[Transition]:
    """Apply the pending requests of these locked attempts, each attempt's oldest first.

    A handful of statements for the whole batch: the pending requests, the exams and the held
    reviews are read at once, and the writes go out in one flush, inside one savepoint.

    One attempt's failure is its own. When an attempt spoils the batch, the batch is rolled
    back to its savepoint and each attempt is applied again alone, in a savepoint of its own:
    the others are applied, and the one that fails again has its pending requests end
    ``failed`` with the reason (for an operator to replay) if it is one of ``named`` (the
    attempts the caller was asked to apply; all of them by default), or left pending for the
    task that names it when it was only drained along.
    """
    if not attempts:
        return []
    try:
        with _savepoint(session):
            return _apply_batch(session, attempts)
    except _WHOLE_TRANSACTION:
        raise
    except Exception as exc:
        log.warning("a batch of %d attempts failed (%s); applying each alone", len(attempts), exc)
    done: list[Transition] = []
    for attempt in attempts:
        attempt_id = session.identity_key(instance=attempt)[1][0]
        try:
            with _savepoint(session):
                done.extend(_apply_batch(session, [attempt]))
        except _WHOLE_TRANSACTION:
            raise
        except Exception as exc:
            if named is None or attempt_id in named:
                log.warning("attempt %s could not be applied: %s", attempt_id, exc)
                _fail_attempt(session, attempt_id, exc)
    return done


@contextmanager
def _savepoint(session: Session) -> Iterator[None]:
    """A savepoint whose wake-ups are forgotten with it when it is rolled back, and whose
    writes are: a batch writes its rows' new values in memory as committed (_Batch.write), so
    every loaded row is read again from the database after a rollback."""
    wakeups = session.info.setdefault("wakeups", [])
    before = len(wakeups)
    try:
        with session.begin_nested():
            yield
    except BaseException:
        del wakeups[before:]
        session.expire_all()
        raise


def _fail_attempt(session: Session, attempt_id: int, exc: Exception) -> None:
    reason = str(exc).splitlines()[0] if str(exc) else ""
    pending = session.scalars(
        select(Transition.id).where(
            Transition.attempt_id == attempt_id, Transition.state == TransitionState.pending
        )
    ).all()
    INBOX.fail(session, pending, f"could not be applied: {type(exc).__name__}: {reason}"[:2000])


def _apply_batch(session: Session, attempts: Sequence[Attempt]) -> list[Transition]:
    by_id = {a.id: a for a in attempts}
    # The pending requests with their attempt's exam, in one query.
    pending = session.execute(
        select(Transition, Exam)
        .join(Attempt, Attempt.id == Transition.attempt_id)
        .join(Exam, Exam.id == Attempt.exam_id)
        .where(Transition.attempt_id.in_(by_id), Transition.state == TransitionState.pending)
        .order_by(Transition.attempt_id, Transition.id)
    ).all()
    if not pending:
        return []
    batch = _Batch(session, by_id)
    for transition, exam in pending:
        assert transition.attempt_id is not None
        batch.apply(by_id[transition.attempt_id], exam, transition)
    return batch.finish()


class _Batch:
    """The writes of one batch: applied in memory, written at once, woken after.

    The requests' and attempts' new values go out as one UPDATE per table and set of columns
    (an executemany), and the history as one INSERT: the unit of work's flush, tracking each
    row's changes, was a third of the appliers' CPU in a profile (docs/PERFORMANCE.md).
    """

    def __init__(self, session: Session, attempt_ids: Iterable[int]) -> None:
        self.session = session
        self.attempt_ids = set(attempt_ids)
        self.done: list[Transition] = []
        self.outbox: list[Outbox] = []
        self.events: list[dict[str, Any]] = []  # rows for events.insert
        self.history: list[dict[str, Any]] = []  # rows for attempt_history
        self._writes: dict[Any, dict[int, dict[str, Any]]] = {Transition: {}, Attempt: {}}
        self._held: dict[int, list[Review]] | None = None

    def write(self, row: Transition | Attempt, **values: Any) -> None:
        """New column values: at once in memory (as committed, so the unit of work leaves
        the row alone), in the database when the batch finishes."""
        for key, value in values.items():
            set_committed_value(row, key, value)
        self._writes[type(row)].setdefault(row.id, {}).update(values)

    def apply(self, attempt: Attempt, exam: Exam, transition: Transition) -> None:
        self.done.extend(_apply(self, attempt, exam, transition))

    def held_reviews(self, attempt: Attempt) -> list[Review]:
        """Reviews waiting for a submit, read once for the whole batch. None can appear
        meanwhile: recording a review waits for the attempt's lock, which the batch holds."""
        if self._held is None:
            self._held = {}
            for review in self.session.scalars(
                select(Review)
                .where(Review.attempt_id.in_(self.attempt_ids), Review.state == ReviewState.held)
                .order_by(Review.id)
            ):
                self._held.setdefault(review.attempt_id, []).append(review)
        return self._held.pop(attempt.id, [])

    def finish(self) -> list[Transition]:
        self.session.flush()
        for model, writes in self._writes.items():
            _update_rows(self.session, model, writes)
        if self.history:
            self.session.execute(insert(AttemptHistory), self.history)
        for row in self.outbox:
            wake(self.session, row.kind, [row.id])
        events.insert(self.session, self.events)
        return self.done


def _update_rows(session: Session, model: Any, writes: dict[int, dict[str, Any]]) -> None:
    """One executemany per set of columns written."""
    table = model.__table__
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row_id, values in writes.items():
        row = {"b_id": row_id, **{f"b_{key}": value for key, value in values.items()}}
        by_columns.setdefault(tuple(sorted(values)), []).append(row)
    for columns, rows in by_columns.items():
        statement = (
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values({column: bindparam(f"b_{column}") for column in columns})
        )
        session.execute(statement, rows)


def _apply(batch: _Batch, attempt: Attempt, exam: Exam, transition: Transition) -> list[Transition]:
    session = batch.session
    now = utcnow()
    current = attempt.status
    step = decide(attempt, exam, transition, now)
    batch.write(transition, state=step.state, detail=step.detail, applied_at=now)
    if attempt.archived_at is None:
        batch.write(transition, from_status=current)
    if step.state is TransitionState.noop:
        batch.write(transition, result_status=current)
        if step.detail == REVIEW_NOT_APPLIED:
            session.execute(
                update(Review)
                .where(Review.transition_id == transition.id)
                .values(state=ReviewState.stored)
            )
    if step.state is not TransitionState.applied:
        return [transition]

    result = step.result
    assert result is not None
    batch.write(transition, result_status=result)
    _write_status(batch, attempt, exam, result, now, step.completed_at)
    batch.history.append(
        {
            "attempt_id": attempt.id,
            "from_status": current,
            "to_status": result,
            "transition_id": transition.id,
            "at": now,
        }
    )
    _record_follow_ups(batch, attempt, transition, result)
    vendor_calls.status_applied(session, attempt, current, result)
    batch.events.extend(events.status_changed(attempt, exam, transition, current, result, now))
    done = [transition]
    if result is Status.submitted:
        done.extend(_release_held_reviews(batch, attempt, exam))
    return done


def _write_status(
    batch: _Batch,
    attempt: Attempt,
    exam: Exam,
    result: Status,
    now: dt.datetime,
    completed_at: dt.datetime | None,
) -> None:
    """Step 9 of applying: the status and its time stamps."""
    batch.write(attempt, status=result, updated_at=now)
    if result is Status.started and attempt.started_at is None:
        batch.write(attempt, started_at=now, allowed_time_limit_mins=allowed_minutes(exam, now))
    elif result is Status.submitted:
        batch.write(attempt, completed_at=completed_at or now)


def _record_follow_ups(
    batch: _Batch, attempt: Attempt, transition: Transition, result: Status
) -> None:
    """Step 10: outbox rows in this transaction, published after it commits."""
    kinds: list[OutboxKind] = []
    if statuses.credit_value(result) is not None:
        kinds.append(OutboxKind.credit)
    if statuses.cascades_declines(result) and transition.source is not Source.cascade:
        if result is Status.declined:
            batch.write(attempt, taking_as_proctored=False, external_id=None)
        kinds.append(OutboxKind.cascade)
    if (
        statuses.sends_email(result)
        and attempt.taking_as_proctored
        and not attempt.is_sample_attempt
    ):
        kinds.append(OutboxKind.email)
    if not kinds:
        return
    rows = [Outbox(kind=k, attempt_id=attempt.id, transition_id=transition.id) for k in kinds]
    batch.session.add_all(rows)
    batch.outbox.extend(rows)


def _release_held_reviews(batch: _Batch, attempt: Attempt, exam: Exam) -> list[Transition]:
    """Step 11: reviews that waited for the submit are applied right after it."""
    session = batch.session
    held = batch.held_reviews(attempt)
    done: list[Transition] = []
    for review in held:
        transition = Transition(
            attempt_id=attempt.id,
            exam_id=attempt.exam_id,
            user_id=attempt.user_id,
            to_status=review.outcome,
            source=Source.vendor,
            idempotency_key=review_key(review.provider, review.webhook_id),
            state=TransitionState.pending,
            received_at=utcnow(),
            deliveries=0,
        )
        session.add(transition)
        session.flush()
        review.state = ReviewState.applied
        review.transition_id = transition.id
        done.extend(_apply(batch, attempt, exam, transition))
    return done
