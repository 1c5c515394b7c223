"""Attempts: what learners, staff and the LMS create, read and archive."""

from __future__ import annotations

from typing import Annotated

from fastapi import Response

from api.access import attempt_creator, attempt_reader, course_staff, requires
from api.deps import AccessDep, AttemptIdPath, ExamIdPath, UoW
from api.present import attempt_out, documented, examples
from api.routing import user_router
from api.schemas import AttemptCreate, AttemptOut
from proctoring import attempts, timeouts

router = user_router("attempts")


AttemptBody = Annotated[
    AttemptCreate,
    examples(
        {
            "self": ("A learner starts their own attempt", {}),
            "for": (
                "Staff create one for a learner, with the vendor's session",
                {"user_id": 42, "taking_as_proctored": True, "external_id": "session-8812"},
            ),
        }
    ),
]


@router.post(
    "/v1/exams/{exam_id}/attempts",
    **documented("Create an attempt", 401, 403, 404, 409, status_code=201),
)
@requires(attempt_creator)
def create_attempt(
    uow: UoW, access: AccessDep, exam_id: ExamIdPath, attempt: AttemptBody
) -> AttemptOut:
    """A learner creates their own attempt; staff name the learner with `user_id`. An attempt
    always starts `created`; a second one for the same learner and exam is a 409 until staff
    archive the first. Only staff or the LMS set `external_id`, the vendor's session id (a
    learner who sends one for themselves gets a 403); a session id already held by a live
    attempt of the exam's vendor is a 409. An attempt at an exam that is not proctored is
    never `taking_as_proctored`, whatever was asked."""
    with uow() as session:
        row = attempts.create_attempt(
            session,
            exam_id=exam_id,
            user_id=attempt.user_id or access.caller.user_id,
            taking_as_proctored=attempt.taking_as_proctored,
            external_id=attempt.external_id,
        )
        return attempt_out(row)


@router.get("/v1/attempts/{attempt_id}", **documented("An attempt", 401, 403, 404))
@requires(attempt_reader)
def get_attempt(uow: UoW, attempt_id: AttemptIdPath) -> AttemptOut:
    """Reading an attempt whose time has run out also requests its time-out."""
    with uow() as session:
        row = attempts.get_attempt(session, attempt_id)
        timeouts.notice_expiry(session, row)
        return attempt_out(row)


@router.delete(
    "/v1/attempts/{attempt_id}",
    **documented("Archive an attempt so the learner may try again", 401, 403, 404, status_code=204),
)
@requires(course_staff)
def archive_attempt(uow: UoW, attempt_id: AttemptIdPath) -> Response:
    """The attempt is kept (reviews of it are still stored), no longer reachable here, and the
    learner's credit requirement for the exam is cleared as a follow-up."""
    with uow() as session:
        attempts.archive_attempt(session, attempt_id)
    return Response(status_code=204)
