"""Rows to answers, and what each route documents: its error answers, its body's examples."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Body
from pydantic import BaseModel

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

Answer = TypeVar("Answer", bound=BaseModel)

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


def documented(summary: str, *codes: int, **more: Any) -> dict[str, Any]:
    """What a route's decorator documents besides its path: its summary, its error answers
    (as ``errors``) and anything more it is given, such as its status code."""
    return {"summary": summary, "responses": errors(*codes), **more}


def examples(named: dict[str, tuple[str, Any]]) -> Any:
    """A request body documented by named examples, each given as (summary, value)."""
    return Body(
        openapi_examples={
            name: {"summary": summary, "value": value} for name, (summary, value) in named.items()
        }
    )


def _answer(shape: type[Answer], row: object, **given: Any) -> Answer:
    """An answer whose fields are the row's columns of the same names, but for those given."""
    return shape(
        **{name: getattr(row, name) for name in shape.model_fields if name not in given}, **given
    )


def exam_out(exam: Exam) -> ExamOut:
    return _answer(ExamOut, exam, exam_id=exam.id)


def attempt_out(attempt: Attempt) -> AttemptOut:
    return _answer(AttemptOut, attempt, attempt_id=attempt.id)


def transition_out(transition: Transition) -> TransitionOut:
    return _answer(
        TransitionOut,
        transition,
        transition_id=transition.id,
        source=transition.source.value,
        state=transition.state.value,
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
