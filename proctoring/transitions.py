"""Transition requests: record them (the inbox) and apply them (SPEC §3 and §4)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import uuid
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy.exc
from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from proctoring import statuses
from proctoring.attempts import attempts_for_cascades, lock_attempts
from proctoring.clock import utcnow
from proctoring.db import WakeupKind, wake
from proctoring.errors import Conflict, NotFound
from proctoring.models import (
    KEY_LENGTH,
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
from proctoring.providers import allows_timed_out_state
from proctoring.statuses import Source, Status

log = logging.getLogger(__name__)

APPLY = WakeupKind.apply
REVIEW_NOT_APPLIED = (
    "the attempt was declined or is not taken as proctored by the time the review was "
    "applied; the review is stored, not applied"
)
FINAL_STATES = frozenset(
    {
        TransitionState.applied,
        TransitionState.noop,
        TransitionState.rejected,
        TransitionState.failed,
    }
)


def refusal(from_status: Status, to_status: Status, exam_id: int, user_id: int) -> str:
    return (
        f"A status transition from {from_status} to {to_status} was attempted on exam_id "
        f"{exam_id} for user_id {user_id}. This is not allowed!"
    )


# --- recording --------------------------------------------------------------------------------


def scoped_key(actor_user_id: int | None, key: str | None) -> str | None:
    """The stored idempotency key of a learner's or staff's request; None when there is none.

    Keys are scoped to the caller, as payment APIs scope them to an account: two learners who
    both send "submit-1" make two requests, not a conflict. Without a key, every request is new.
    """
    if key is None:
        return None
    return f"user:{actor_user_id}:{key}"


def lock_attempt_for_request(session: Session, attempt_id: int) -> Attempt:
    """Hold the attempt against appliers, and read its latest committed status.

    FOR KEY SHARE lets many recorders in at once but waits for (and is waited on by) the
    applier's FOR UPDATE. A review is recorded under it: whether the review is held depends on
    the status, and an applier that releases held reviews cannot run meanwhile.
    """
    attempt = session.scalar(
        select(Attempt)
        .where(Attempt.id == attempt_id)
        .with_for_update(read=True, key_share=True)
        .execution_options(populate_existing=True)
    )
    if attempt is None or attempt.archived_at is not None:
        raise NotFound(f"attempt {attempt_id} does not exist")
    return attempt


def record_transition(
    session: Session,
    *,
    attempt_id: int,
    to_status: Status,
    source: Source,
    idempotency_key: str | None,
    actor_user_id: int | None = None,
    expired_at: dt.datetime | None = None,
) -> tuple[Transition, bool]:
    """Record a request in the inbox; returns it and whether it is new.

    The same (source, key) again returns the first request, or raises Conflict if it asked for
    something else. Without a key the request is new and nothing is looked up. The apply
    message is published after the commit.

    Order: inserting the row checks its foreign key with a KEY SHARE lock on the attempt,
    held until the commit. The applier's FOR UPDATE waits for it, so an applier never reads
    an attempt's pending requests while one is being recorded: nothing received earlier can
    commit later than what an applier has seen.
    """
    if idempotency_key is not None:
        existing = find_by_key(session, source, idempotency_key)
        if existing is not None:
            return _same_request(existing, attempt_id, to_status), False
    attempt = session.get(Attempt, attempt_id)
    if attempt is None or attempt.archived_at is not None:
        raise NotFound(f"attempt {attempt_id} does not exist")
    transition = Transition(
        attempt_id=attempt.id,
        exam_id=attempt.exam_id,
        user_id=attempt.user_id,
        to_status=to_status,
        source=source,
        actor_user_id=actor_user_id,
        idempotency_key=idempotency_key or f"auto:{uuid.uuid4()}",
        expired_at=expired_at,
        state=TransitionState.pending,
        received_at=utcnow(),
        deliveries=0,
    )
    if idempotency_key is None:  # no key, no race on it: no savepoint either
        session.add(transition)
        session.flush()
        wake(session, APPLY, [transition.id])
        return transition, True
    try:
        with session.begin_nested():
            session.add(transition)
    except IntegrityError:
        # The same key raced us in another transaction, which has committed by now.
        existing = find_by_key(session, source, idempotency_key)
        if existing is None:
            raise
        return _same_request(existing, attempt_id, to_status), False
    wake(session, APPLY, [transition.id])
    return transition, True


def _same_request(existing: Transition, attempt_id: int, to_status: Status) -> Transition:
    if existing.attempt_id != attempt_id or existing.to_status != to_status:
        key = "webhook-id" if existing.source is Source.vendor else "Idempotency-Key"
        raise Conflict(
            f"this {key} was already used for a different request "
            f"(attempt {existing.attempt_id}, to_status {existing.to_status})"
        )
    return existing


def find_by_key(session: Session, source: Source, key: str) -> Transition | None:
    return session.scalar(
        select(Transition).where(Transition.source == source, Transition.idempotency_key == key)
    )


def get_transition(session: Session, transition_id: int) -> Transition:
    transition = session.get(Transition, transition_id)
    if transition is None:
        raise NotFound(f"transition {transition_id} does not exist")
    return transition


def transitions_of_attempt(session: Session, attempt_id: int) -> Sequence[Transition]:
    return session.scalars(
        select(Transition).where(Transition.attempt_id == attempt_id).order_by(Transition.id)
    ).all()


# --- applying ---------------------------------------------------------------------------------


@dataclass
class _Step:
    """What one request comes to, before it is written."""

    state: TransitionState
    result: Status | None = None
    detail: str | None = None
    completed_at: dt.datetime | None = None


def apply_transitions(
    session: Session, transition_ids: Iterable[int], *, drain: int = 0
) -> list[Transition]:
    """Apply every pending request of the attempts these requests belong to.

    With ``drain``, also up to that many other attempts with pending requests, oldest first,
    that no other worker holds (SKIP LOCKED): one task and one transaction then apply a whole
    backlog, and the messages for those requests find nothing left to do. The named attempts
    are waited for, so a request is never left behind because its attempt was busy.

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
    if drain:
        attempts += lock_attempts(
            session, _oldest_pending_attempts(session, drain, exclude=attempt_ids), skip_locked=True
        )
    return apply_pending(session, attempts, named=attempt_ids)


def _oldest_pending_attempts(session: Session, limit: int, exclude: set[int]) -> list[int]:
    found = session.scalars(
        select(Transition.attempt_id)
        .where(Transition.state == TransitionState.pending, Transition.attempt_id.is_not(None))
        .order_by(Transition.received_at)
        .limit(limit + len(exclude))
    ).all()
    return sorted({a for a in found if a is not None and a not in exclude})[:limit]


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


def apply_pending_transitions(session: Session, attempt: Attempt) -> list[Transition]:
    """Apply one attempt's pending requests, oldest first. The caller holds its lock."""
    return apply_pending(session, [attempt])


# The connection or the database itself is in trouble: the whole transaction is lost, and
# only trying it all again later helps.
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
    """A savepoint whose wake-ups are forgotten with it when it is rolled back."""
    wakeups = session.info.setdefault("wakeups", [])
    before = len(wakeups)
    try:
        with session.begin_nested():
            yield
    except BaseException:
        del wakeups[before:]
        raise


def _fail_attempt(session: Session, attempt_id: int, exc: Exception) -> None:
    reason = str(exc).splitlines()[0] if str(exc) else ""
    pending = session.scalars(
        select(Transition.id).where(
            Transition.attempt_id == attempt_id, Transition.state == TransitionState.pending
        )
    ).all()
    fail_transitions(
        session, pending, f"could not be applied: {type(exc).__name__}: {reason}"[:2000]
    )


def _apply_batch(session: Session, attempts: Sequence[Attempt]) -> list[Transition]:
    by_id = {a.id: a for a in attempts}
    pending = session.scalars(
        select(Transition)
        .where(Transition.attempt_id.in_(by_id), Transition.state == TransitionState.pending)
        .order_by(Transition.attempt_id, Transition.id)
    ).all()
    if not pending:
        return []
    exams = {
        e.id: e
        for e in session.scalars(
            select(Exam).where(
                Exam.id.in_({by_id[t.attempt_id].exam_id for t in pending if t.attempt_id})
            )
        )
    }
    batch = _Batch(session, by_id)
    for transition in pending:
        assert transition.attempt_id is not None
        attempt = by_id[transition.attempt_id]
        batch.apply(attempt, exams[attempt.exam_id], transition)
    return batch.finish()


class _Batch:
    """The writes of one batch: applied in memory, flushed once, woken after."""

    def __init__(self, session: Session, attempt_ids: Iterable[int]) -> None:
        self.session = session
        self.attempt_ids = set(attempt_ids)
        self.done: list[Transition] = []
        self.outbox: list[Outbox] = []
        self._held: dict[int, list[Review]] | None = None

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
        for row in self.outbox:
            wake(self.session, row.kind, [row.id])
        return self.done


def _apply(batch: _Batch, attempt: Attempt, exam: Exam, transition: Transition) -> list[Transition]:
    session = batch.session
    now = utcnow()
    current = attempt.status
    step = _decide(attempt, exam, transition, now)
    transition.state = step.state
    transition.detail = step.detail
    transition.applied_at = now
    if attempt.archived_at is None:
        transition.from_status = current
    if step.state is TransitionState.noop:
        transition.result_status = current
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
    transition.result_status = result
    _write_status(attempt, exam, result, now, step.completed_at)
    session.add(
        AttemptHistory(
            attempt_id=attempt.id,
            from_status=current,
            to_status=result,
            transition_id=transition.id,
            at=now,
        )
    )
    _record_follow_ups(batch, attempt, transition, result)
    done = [transition]
    if result is Status.submitted:
        done.extend(_release_held_reviews(batch, attempt, exam))
    return done


def _decide(attempt: Attempt, exam: Exam, transition: Transition, now: dt.datetime) -> _Step:
    """SPEC §3 steps 1–6: what this request comes to, given the attempt as it is now."""
    rejected, noop = TransitionState.rejected, TransitionState.noop
    current, requested, source = attempt.status, transition.to_status, transition.source

    # 1. The attempt must exist (an archived one no longer does).
    if attempt.archived_at is not None:
        return _Step(rejected, detail="attempt does not exist")
    # 2. The source may only set its own targets, judged on the target as requested.
    if not statuses.may_set(source, requested):
        return _Step(rejected, detail=refusal(current, requested, exam.id, attempt.user_id))
    # 3. A vendor's "ready" only moves an attempt that has not got further.
    if (
        source is Source.vendor
        and requested is Status.ready_to_start
        and current not in statuses.VENDOR_READY_FROM
    ):
        return _Step(
            noop,
            detail=(
                f"the attempt is {current}; a vendor's ready_to_start applies only while it is "
                "created or download_software_clicked"
            ),
        )
    # A review recorded while the attempt looked reviewable, applied after a decline that was
    # received first: SPEC §5 stores reviews of declined attempts, it does not apply them.
    if (
        source is Source.vendor
        and requested is not Status.ready_to_start
        and (current is Status.declined or not attempt.taking_as_proctored)
    ):
        return _Step(noop, detail=REVIEW_NOT_APPLIED)
    # 4. Same status: nothing to do. This is what makes repeats harmless.
    if requested == current:
        return _Step(noop, detail=f"the attempt is already {current}")
    # A cascade leaves an attempt that is already over alone.
    if source is Source.cascade and statuses.is_completed(current):
        return _Step(
            noop,
            detail=f"the attempt is already {current}, a completed status; a cascade leaves it",
        )
    # 5. Aliasing.
    target, completed_at, why = requested, None, None
    if requested is Status.timed_out and not _timed_out_allowed(exam, current):
        target, completed_at = Status.submitted, _expiry_moment(attempt, now)
        why = f"timed_out became submitted: provider {exam.provider} keeps no timed-out state"
    elif statuses.is_in_progress(current) and statuses.is_pre_start(requested):
        target = Status.submitted
        why = f"{requested} from {current} re-enters the exam, which submits it"
    if target == current:
        return _Step(noop, detail=f"{why}; the attempt is already {current}")
    # 6. Legality.
    if not _legal(current, target, source):
        return _Step(rejected, detail=refusal(current, target, exam.id, attempt.user_id))
    return _Step(TransitionState.applied, result=target, detail=why, completed_at=completed_at)


def _timed_out_allowed(exam: Exam, current: Status) -> bool:
    allowed = allows_timed_out_state(exam.provider)
    if allowed is None:
        return current is Status.created
    return allowed


def _expiry_moment(attempt: Attempt, now: dt.datetime) -> dt.datetime:
    """When the time ran out: start plus allowed minutes, or now if unknown or later."""
    if attempt.started_at is None or attempt.allowed_time_limit_mins is None:
        return now
    return min(now, attempt.started_at + dt.timedelta(minutes=attempt.allowed_time_limit_mins))


def _legal(current: Status, target: Status, source: Source) -> bool:
    if statuses.is_completed(current):
        if statuses.is_incomplete(target):
            return False
        if target is Status.error and source not in (Source.vendor, Source.staff):
            return False
    return not (statuses.is_reviewed(current) and source is Source.learner)


def _write_status(
    attempt: Attempt,
    exam: Exam,
    result: Status,
    now: dt.datetime,
    completed_at: dt.datetime | None,
) -> None:
    """SPEC §3 step 7: the status and its time stamps."""
    attempt.status = result
    if result is Status.started and attempt.started_at is None:
        attempt.started_at = now
        attempt.allowed_time_limit_mins = allowed_minutes(exam, now)
    elif result is Status.submitted:
        attempt.completed_at = completed_at or now


def allowed_minutes(exam: Exam, now: dt.datetime) -> int:
    """The exam's limit, or the whole minutes left until it is due if fewer; never below 0."""
    if exam.due_date is None:
        return exam.time_limit_mins
    left = math.floor((exam.due_date - now).total_seconds() / 60)
    return max(0, min(exam.time_limit_mins, left))


def _record_follow_ups(
    batch: _Batch, attempt: Attempt, transition: Transition, result: Status
) -> None:
    """SPEC §3 step 8: outbox rows in this transaction, published after it commits."""
    kinds: list[OutboxKind] = []
    if statuses.credit_value(result) is not None:
        kinds.append(OutboxKind.credit)
    if statuses.cascades_declines(result) and transition.source is not Source.cascade:
        if result is Status.declined:
            attempt.taking_as_proctored = False
            attempt.external_id = None
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
    """SPEC §3 step 9: reviews that waited for the submit are applied right after it."""
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


def review_key(provider: str, webhook_id: str) -> str:
    """The idempotency key of a vendor's request: its webhook id, within its provider.

    A webhook id may be as long as the key column itself: a key that would not fit is kept
    as a digest of itself, so any id the API accepts has its key.
    """
    key = f"{provider}:{webhook_id}"
    if len(key) <= KEY_LENGTH:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


# --- the pipeline's bookkeeping ---------------------------------------------------------------


def count_delivery(
    executor: Session | Connection, transition_ids: Sequence[int], limit: int
) -> list[int]:
    """Count one more delivery of these requests; fail those delivered ``limit`` times already.

    Runs in its own statement, committed before the work, so the count survives a worker that
    dies mid-apply (Celery cannot count redeliveries after a lost worker). Returns the ids
    still pending and worth applying.
    """
    if not transition_ids:
        return []
    counted = executor.execute(
        update(Transition)
        .where(Transition.id.in_(transition_ids), Transition.state == TransitionState.pending)
        .values(deliveries=Transition.deliveries + 1)
        .returning(Transition.id, Transition.deliveries)
    ).all()
    over = [i for i, deliveries in counted if deliveries > limit]
    if over:
        fail_transitions(
            executor,
            over,
            f"gave up after {limit} deliveries: applying it kept failing or killing its worker",
        )
    return sorted(i for i, deliveries in counted if deliveries <= limit)


def fail_transitions(
    executor: Session | Connection, transition_ids: Sequence[int], detail: str
) -> None:
    executor.execute(
        update(Transition)
        .where(Transition.id.in_(transition_ids), Transition.state == TransitionState.pending)
        .values(state=TransitionState.failed, detail=detail[:2000], applied_at=utcnow())
    )


def replay_transitions(session: Session, transition_ids: Sequence[int] | None) -> list[int]:
    """Put failed requests back in the inbox; None means every failed one."""
    query = select(Transition).where(Transition.state == TransitionState.failed)
    if transition_ids is not None:
        query = query.where(Transition.id.in_(transition_ids))
    replayed = session.scalars(query.order_by(Transition.id)).all()
    for transition in replayed:
        transition.state = TransitionState.pending
        transition.detail = None
        transition.applied_at = None
        transition.deliveries = 0
    ids = [t.id for t in replayed]
    wake(session, APPLY, ids)
    return ids
