"""Rows to answers, and the error answers each route documents."""

from __future__ import annotations

from typing import Any

from api.errors import STORE_DOWN
from api.schemas import (
    AttemptOut,
    ExamOut,
    Problem,
    ReviewOut,
    TransitionAccepted,
    TransitionOut,
)
from proctoring import reviews
from proctoring.models import Attempt, Exam, Transition

_EXAMPLES = {
    400: "The Content-Length header is not a number.",
    401: "Authentication credentials were not provided.",
    403: "Must be a Staff User to Perform this request.",
    404: "attempt 12 does not exist",
    409: "this Idempotency-Key was already used for a different request",
    413: "The body is larger than the limit of 1048576 bytes.",
    422: "to_status is not valid: input should be 'created', 'started', … or 'error'.",
    503: STORE_DOWN,
}
_WHY = {
    400: "The request could not be read.",
    401: "No credentials, or bad ones.",
    403: "The caller may not do this here.",
    404: "Nothing by that name, or not visible to this caller.",
    409: "Conflicts with what is already recorded.",
    413: "The body is over the size limit.",
    422: "The request is well-formed but not valid.",
    503: "The store is unreachable; nothing was accepted.",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI answers for these error codes (400, 413, 422 and 503 come with every route)."""
    every = sorted({400, 413, 422, 503, *codes})
    return {
        code: {
            "model": Problem,
            "description": _WHY[code],
            "content": {"application/json": {"example": {"detail": _EXAMPLES[code]}}},
        }
        for code in every
    }


def exam_out(exam: Exam) -> ExamOut:
    return ExamOut(
        exam_id=exam.id,
        course_id=exam.course_id,
        content_id=exam.content_id,
        exam_name=exam.exam_name,
        time_limit_mins=exam.time_limit_mins,
        due_date=exam.due_date,
        external_id=exam.external_id,
        is_proctored=exam.is_proctored,
        is_practice_exam=exam.is_practice_exam,
        is_active=exam.is_active,
        provider=exam.provider,
        created_at=exam.created_at,
        updated_at=exam.updated_at,
    )


def attempt_out(attempt: Attempt) -> AttemptOut:
    return AttemptOut(
        attempt_id=attempt.id,
        exam_id=attempt.exam_id,
        user_id=attempt.user_id,
        status=attempt.status,
        attempt_code=attempt.attempt_code,
        external_id=attempt.external_id,
        taking_as_proctored=attempt.taking_as_proctored,
        is_sample_attempt=attempt.is_sample_attempt,
        started_at=attempt.started_at,
        completed_at=attempt.completed_at,
        allowed_time_limit_mins=attempt.allowed_time_limit_mins,
        created_at=attempt.created_at,
        updated_at=attempt.updated_at,
    )


def transition_out(transition: Transition) -> TransitionOut:
    return TransitionOut(
        transition_id=transition.id,
        attempt_id=transition.attempt_id,
        to_status=transition.to_status,
        source=transition.source.value,
        state=transition.state.value,
        from_status=transition.from_status,
        result_status=transition.result_status,
        detail=transition.detail,
        received_at=transition.received_at,
        applied_at=transition.applied_at,
    )


def vendor_answer(receipt: reviews.VendorReceipt) -> ReviewOut | TransitionAccepted:
    """The answer to a vendor's message, or to the first message of its webhook id."""
    if isinstance(receipt, reviews.ReadyReceipt):
        return TransitionAccepted(
            transition_id=receipt.transition.id, state=receipt.transition.state.value
        )
    return ReviewOut(
        review_id=receipt.review.id,
        attempt_id=receipt.review.attempt_id,
        outcome=receipt.review.outcome,
        state=receipt.state.value,
        transition_id=receipt.transition_id,
    )
