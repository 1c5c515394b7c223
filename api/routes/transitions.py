"""Transition requests: what learners, staff and the LMS send to change an attempt's status,
and how they follow one to its end."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from api.access import attempt_reader, requires, transition_poster, transition_reader
from api.deps import AccessDep, AttemptIdPath, TransitionIdPath, UoW, request_uow
from api.present import documented, errors, examples, transition_out
from api.routing import user_router
from api.schemas import (
    IDEMPOTENCY_KEY_PATTERN,
    TransitionAccepted,
    TransitionCreate,
    TransitionOut,
)
from proctoring import transitions
from proctoring.db import UnitOfWork
from proctoring.models import TransitionState

router = user_router("transitions")

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=f"^{IDEMPOTENCY_KEY_PATTERN}$",
        description="Optional. The same key again returns the first request (200); with "
        "another body it is a 409. Without a key, every request is a new one.",
    ),
]
MAX_WAIT_SECONDS = 30.0


TransitionBody = Annotated[
    TransitionCreate,
    examples(
        {
            "start": ("The learner starts", {"to_status": "started"}),
            "relay": (
                "The LMS relays a learner's click",
                {"to_status": "submitted", "acting_for_learner": True},
            ),
        }
    ),
]


@router.post(
    "/v1/attempts/{attempt_id}/transitions",
    status_code=202,
    responses={
        200: {"model": TransitionAccepted, "description": "The same Idempotency-Key again."},
        **errors(401, 403, 404, 409),
    },
    summary="Request a status change",
)
@requires(transition_poster)
def post_transition(
    uow: UoW,
    access: AccessDep,
    response: Response,
    attempt_id: AttemptIdPath,
    request: TransitionBody,
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
    **documented("An attempt's transitions, in received order", 401, 403, 404),
)
@requires(attempt_reader)
def list_transitions(uow: UoW, attempt_id: AttemptIdPath) -> list[TransitionOut]:
    with uow() as session:
        return [transition_out(t) for t in transitions.transitions_of_attempt(session, attempt_id)]


def _read_transition(uow: UnitOfWork, transition_id: int) -> TransitionOut:
    with uow() as session:
        session.expire_all()  # the request's session keeps what it read before: read it anew
        return transition_out(transitions.get_transition(session, transition_id))


@router.get(
    "/v1/transitions/{transition_id}",
    **documented("A transition request, optionally waiting until it is final", 401, 403, 404),
)
@requires(transition_reader)
async def get_transition(
    request: Request,
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
