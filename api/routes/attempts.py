"""Attempts and their transition requests: what learners, staff and the LMS send."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from api.access import (
    attempt_creator,
    attempt_reader,
    course_staff,
    requires,
    transition_poster,
    transition_reader,
)
from api.deps import (
    AccessDep,
    AttemptIdPath,
    CallerDep,
    ExamIdPath,
    TransitionIdPath,
    UoW,
    get_caller,
    request_uow,
)
from api.present import attempt_out, errors, transition_out
from api.routing import UserRoute
from api.schemas import (
    AttemptCreate,
    AttemptOut,
    TransitionAccepted,
    TransitionCreate,
    TransitionOut,
)
from proctoring import attempts, timeouts, transitions
from proctoring.db import UnitOfWork
from proctoring.models import TransitionState

router = APIRouter(route_class=UserRoute)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Optional. The same key again returns the first request (200); with "
        "another body it is a 409. Without a key, every request is a new one.",
    ),
]
MAX_WAIT_SECONDS = 30.0


@router.post(
    "/v1/exams/{exam_id}/attempts",
    status_code=201,
    response_model=AttemptOut,
    responses=errors(401, 403, 404, 409),
    tags=["attempts"],
    summary="Create an attempt",
)
@requires(attempt_creator)
def create_attempt(
    uow: UoW,
    caller: CallerDep,
    exam_id: ExamIdPath,
    attempt: Annotated[
        AttemptCreate,
        Body(
            openapi_examples={
                "self": {"summary": "A learner starts their own attempt", "value": {}},
                "for": {
                    "summary": "Staff create one for a learner, with the vendor's session",
                    "value": {
                        "user_id": 42,
                        "taking_as_proctored": True,
                        "external_id": "session-8812",
                    },
                },
            }
        ),
    ],
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
            user_id=attempt.user_id or caller.user_id,
            taking_as_proctored=attempt.taking_as_proctored,
            external_id=attempt.external_id,
        )
        return attempt_out(row)


@router.get(
    "/v1/attempts/{attempt_id}",
    response_model=AttemptOut,
    responses=errors(401, 403, 404),
    tags=["attempts"],
    summary="An attempt",
)
@requires(attempt_reader)
def get_attempt(uow: UoW, caller: CallerDep, attempt_id: AttemptIdPath) -> AttemptOut:
    """Reading an attempt whose time has run out also requests its time-out."""
    with uow() as session:
        row = attempts.get_attempt(session, attempt_id)
        timeouts.notice_expiry(session, row)
        return attempt_out(row)


@router.delete(
    "/v1/attempts/{attempt_id}",
    status_code=204,
    responses=errors(401, 403, 404),
    tags=["attempts"],
    summary="Archive an attempt so the learner may try again",
)
@requires(course_staff)
def archive_attempt(uow: UoW, caller: CallerDep, attempt_id: AttemptIdPath) -> Response:
    """The attempt is kept (reviews of it are still stored), no longer reachable here, and the
    learner's credit requirement for the exam is cleared as a follow-up."""
    with uow() as session:
        attempts.archive_attempt(session, attempt_id)
    return Response(status_code=204)


@router.post(
    "/v1/attempts/{attempt_id}/transitions",
    status_code=202,
    response_model=TransitionAccepted,
    responses={
        200: {"model": TransitionAccepted, "description": "The same Idempotency-Key again."},
        **errors(401, 403, 404, 409),
    },
    # The route class reads the token; this shows the bearer scheme in the document.
    dependencies=[Depends(get_caller)],
    tags=["transitions"],
    summary="Request a status change",
)
@requires(transition_poster)
def post_transition(
    uow: UoW,
    access: AccessDep,
    response: Response,
    attempt_id: AttemptIdPath,
    request: Annotated[
        TransitionCreate,
        Body(
            openapi_examples={
                "start": {"summary": "The learner starts", "value": {"to_status": "started"}},
                "relay": {
                    "summary": "The LMS relays a learner's click",
                    "value": {"to_status": "submitted", "acting_for_learner": True},
                },
            }
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> TransitionAccepted:
    """Recorded, then applied by a worker in the order received. The answer comes once the
    request is recorded; follow it with `GET /v1/transitions/{id}?wait=`."""
    assert access.source is not None
    with uow() as session:
        transition, new = transitions.record_transition(
            session,
            attempt_id=attempt_id,
            to_status=request.to_status,
            source=access.source,
            idempotency_key=transitions.scoped_key(access.caller.user_id, idempotency_key),
            actor_user_id=access.caller.user_id,
        )
        answer = TransitionAccepted(transition_id=transition.id, state=transition.state.value)
    if not new:
        response.status_code = 200
    return answer


@router.get(
    "/v1/attempts/{attempt_id}/transitions",
    response_model=list[TransitionOut],
    responses=errors(401, 403, 404),
    tags=["transitions"],
    summary="An attempt's transitions, in received order",
)
@requires(attempt_reader)
def list_transitions(uow: UoW, caller: CallerDep, attempt_id: AttemptIdPath) -> list[TransitionOut]:
    with uow() as session:
        return [transition_out(t) for t in transitions.transitions_of_attempt(session, attempt_id)]


def _read_transition(uow: UnitOfWork, transition_id: int) -> TransitionOut:
    with uow() as session:
        session.expire_all()  # the request's session keeps what it read before: read it anew
        return transition_out(transitions.get_transition(session, transition_id))


@router.get(
    "/v1/transitions/{transition_id}",
    response_model=TransitionOut,
    responses=errors(401, 403, 404),
    tags=["transitions"],
    summary="A transition request, optionally waiting until it is final",
)
@requires(transition_reader)
async def get_transition(
    request: Request,
    caller: CallerDep,
    transition_id: TransitionIdPath,
    wait: Annotated[
        float,
        Query(ge=0, le=MAX_WAIT_SECONDS, description="Seconds to wait for a final state (≤ 30)."),
    ] = 0,
) -> TransitionOut:
    """With `?wait=S`, answers as soon as the request is final, or after S seconds with it as
    it is. Waiting holds neither a database connection nor a worker thread: it polls."""
    uow: UnitOfWork = request_uow(request)
    deadline = time.monotonic() + wait
    pause = 0.02
    while True:
        found = await run_in_threadpool(_read_transition, uow, transition_id)
        if found.state != TransitionState.pending or time.monotonic() >= deadline:
            return found
        # Committed: no session is held from here, so no place among those that hold one.
        request.state.admission.leave()
        await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 1.5, 0.25)
