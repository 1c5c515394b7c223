"""What a request comes to, given the attempt as it is: the rules of applying, without a database.

docs/behaviour.md, "Applying a transition", steps 1 to 8, in that order. Nothing here reads or
writes a table: the batch writer (proctoring/apply.py) hands in the attempt, its exam and the
request, and writes what comes out.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from proctoring import statuses
from proctoring.models import Attempt, Exam, Transition, TransitionState
from proctoring.providers import allows_timed_out_state
from proctoring.statuses import Source, Status
from proctoring.timeouts import expiry

REVIEW_NOT_APPLIED = (
    "the attempt was declined or is not taken as proctored by the time the review was "
    "applied; the review is stored, not applied"
)


def refusal(from_status: Status, to_status: Status, exam_id: int, user_id: int) -> str:
    return (
        f"A status transition from {from_status} to {to_status} was attempted on exam_id "
        f"{exam_id} for user_id {user_id}. This is not allowed!"
    )


@dataclass
class Step:
    """What one request comes to, before it is written."""

    state: TransitionState
    result: Status | None = None
    detail: str | None = None
    completed_at: dt.datetime | None = None


def decide(attempt: Attempt, exam: Exam, transition: Transition, now: dt.datetime) -> Step:
    """What this request comes to, given the attempt as it is now."""
    rejected, noop = TransitionState.rejected, TransitionState.noop
    current, requested, source = attempt.status, transition.to_status, transition.source

    # 1. The attempt must exist (an archived one no longer does).
    if attempt.archived_at is not None:
        return Step(rejected, detail="attempt does not exist")
    # 2. The source may only set its own targets, judged on the target as requested.
    if not statuses.may_set(source, requested):
        return Step(rejected, detail=refusal(current, requested, exam.id, attempt.user_id))
    # 3. A vendor's "ready" only moves an attempt that has not got further.
    if (
        source is Source.vendor
        and requested is Status.ready_to_start
        and current not in statuses.VENDOR_READY_FROM
    ):
        return Step(
            noop,
            detail=(
                f"the attempt is {current}; a vendor's ready_to_start applies only while it is "
                "created or download_software_clicked"
            ),
        )
    # 4. A review recorded while the attempt looked reviewable, applied after a decline that
    # was received first: reviews of declined attempts are stored, not applied.
    if (
        source is Source.vendor
        and requested is not Status.ready_to_start
        and (current is Status.declined or not attempt.taking_as_proctored)
    ):
        return Step(noop, detail=REVIEW_NOT_APPLIED)
    # 5. Same status: nothing to do. This is what makes repeats harmless.
    if requested == current:
        return Step(noop, detail=f"the attempt is already {current}")
    # 6. A cascade leaves an attempt that is already over alone.
    if source is Source.cascade and statuses.is_completed(current):
        return Step(
            noop,
            detail=f"the attempt is already {current}, a completed status; a cascade leaves it",
        )
    # 7. Aliasing.
    target, why = alias(exam, current, requested)
    completed_at = None
    if requested is Status.timed_out and target is Status.submitted:
        # A time-out turned submit is submitted as of the moment the time ran out.
        completed_at = expiry_moment(attempt, now)
    if target == current:
        return Step(noop, detail=f"{why}; the attempt is already {current}")
    # 8. Legality.
    if not legal(current, target, source):
        return Step(rejected, detail=refusal(current, target, exam.id, attempt.user_id))
    return Step(TransitionState.applied, result=target, detail=why, completed_at=completed_at)


def alias(exam: Exam, current: Status, requested: Status) -> tuple[Status, str | None]:
    """The status a request really asks for from ``current``, and why it differs, if it does.

    A time-out becomes a submit unless the exam's provider keeps the timed-out state; a
    pre-start target from an exam in progress re-enters the exam, which submits it.
    """
    if requested is Status.timed_out and not timed_out_allowed(exam, current):
        why = f"timed_out became submitted: provider {exam.provider} keeps no timed-out state"
        return Status.submitted, why
    if statuses.is_in_progress(current) and statuses.is_pre_start(requested):
        return Status.submitted, f"{requested} from {current} re-enters the exam, which submits it"
    return requested, None


def timed_out_allowed(exam: Exam, current: Status) -> bool:
    """The provider's ``allow_timed_out_state``; when it does not say, only from created."""
    allowed = allows_timed_out_state(exam.provider)
    if allowed is None:
        return current is Status.created
    return allowed


def expiry_moment(attempt: Attempt, now: dt.datetime) -> dt.datetime:
    """When the time ran out: the attempt's expiry, or now if unknown or later."""
    expired_at = expiry(attempt)
    return now if expired_at is None else min(now, expired_at)


def legal(current: Status, target: Status, source: Source) -> bool:
    if statuses.is_completed(current):
        if statuses.is_incomplete(target):
            return False
        if target is Status.error and source not in (Source.vendor, Source.staff):
            return False
    return not (statuses.is_reviewed(current) and source is Source.learner)


def allowed_minutes(exam: Exam, now: dt.datetime) -> int:
    """The exam's limit, or the whole minutes left until it is due if fewer; never below 0."""
    if exam.due_date is None:
        return exam.time_limit_mins
    left = math.floor((exam.due_date - now).total_seconds() / 60)
    return max(0, min(exam.time_limit_mins, left))
