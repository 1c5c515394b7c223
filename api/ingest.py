"""The common case of a transition request, in one statement and one trip to a thread.

`POST /v1/attempts/{id}/transitions` is the route the LMS calls for every click of every
learner. Its common case (a valid body, a caller with the right to the attempt, a key not used
before) is decided and recorded by one `INSERT … SELECT … RETURNING` in autocommit: the SELECT
holds the attempt with FOR KEY SHARE, finds the caller's right to it (owner, global staff, or
staff of its course) and the request's source, and the INSERT takes the row's id only after
that lock, as `proctoring.transitions.record_transition` does. The answer is sent once the row
is committed; the wake-up follows it, as from any commit (docs/design.md, rule 1).

Everything else (a body or key that does not validate, no such attempt, no right to it, a key
seen before) inserts nothing, and the request then takes the full path, which gives every
answer it gives today: 403, 404, 409, 422, or 200 with the first request.
"""

from __future__ import annotations

import functools
import re
import uuid

from pydantic import ValidationError
from sqlalchemy import (
    BigInteger,
    Boolean,
    Executable,
    bindparam,
    case,
    exists,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from api.access import parse_id
from api.auth import Caller
from api.callers import known_users, write_user
from api.schemas import TransitionCreate
from proctoring.clock import utcnow
from proctoring.db import UnitOfWork, Wakeup
from proctoring.ledger import APPLY
from proctoring.models import Attempt, CourseStaff, Exam, Transition, TransitionState
from proctoring.statuses import Source

# The Idempotency-Key header as the route declares it (api/routes/transitions.py).
_KEY = re.compile(r"[\x21-\x7e]{1,200}")
_ACCEPTED = b'{"transition_id":%d,"state":"pending"}'


@functools.cache
def _statement(dialect: str) -> Executable:
    """Built once per dialect: PostgreSQL or SQLite."""
    attempt, exam, staff = Attempt.__table__, Exam.__table__, CourseStaff.__table__
    caller = bindparam("caller", type_=BigInteger)
    owner = attempt.c.user_id == caller
    of_course = exists().where(staff.c.course_id == exam.c.course_id, staff.c.user_id == caller)
    learner = or_(owner, bindparam("relaying", type_=Boolean))
    target = (
        select(
            attempt.c.id,
            attempt.c.exam_id,
            attempt.c.user_id,
            bindparam("to_status"),
            case((learner, literal(Source.learner.value)), else_=literal(Source.staff.value)),
            caller,
            bindparam("key"),
            literal(TransitionState.pending.value),
            bindparam("received_at"),
            literal(0),
        )
        .join(exam, exam.c.id == attempt.c.exam_id)
        .where(
            attempt.c.id == bindparam("attempt_id"),
            attempt.c.archived_at.is_(None),
            or_(owner, bindparam("is_staff", type_=Boolean), of_course),
        )
        .with_for_update(read=True, key_share=True, of=attempt)
    )
    table = Transition.__table__
    columns = [
        table.c.attempt_id,
        table.c.exam_id,
        table.c.user_id,
        table.c.to_status,
        table.c.source,
        table.c.actor_user_id,
        table.c.idempotency_key,
        table.c.state,
        table.c.received_at,
        table.c.deliveries,
    ]
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    insert = upsert(Transition).from_select(columns, target)
    return insert.on_conflict_do_nothing(
        index_elements=[table.c.source, table.c.idempotency_key]
    ).returning(table.c.id)


def record(
    uow: UnitOfWork, caller: Caller, attempt_id: int, request: TransitionCreate, key: str | None
) -> int | None:
    """The new request's id, committed; None when the full path must decide."""
    with uow.autocommit() as connection:
        if known_users.changed(caller):
            write_user(connection, caller)
        transition_id: int | None = connection.execute(
            _statement(connection.dialect.name),
            {
                "caller": caller.user_id,
                "relaying": request.acting_for_learner,
                "is_staff": caller.is_staff,
                "attempt_id": attempt_id,
                "to_status": request.to_status.value,
                "key": f"user:{caller.user_id}:{key}" if key else f"auto:{uuid.uuid4()}",
                "received_at": utcnow(),
            },
        ).scalar()
    if transition_id is not None:
        uow.publish([Wakeup(APPLY, transition_id)])
    return transition_id


def _json(content_type: str | None) -> bool:
    """Whether FastAPI would read the body as JSON (no type, application/json or */*+json)."""
    if content_type is None:
        return True
    kind = content_type.partition(";")[0].strip().lower()
    subtype = kind.removeprefix("application/")
    return subtype != kind and (subtype == "json" or subtype.endswith("+json"))


async def accept(request: Request, caller: Caller, body: bytes) -> Response | None:
    """The 202 of the common case, or None for the full path to answer."""
    attempt_id = parse_id(request.path_params.get("attempt_id", ""))
    key = request.headers.get("idempotency-key")
    if (
        attempt_id is None
        or (key is not None and not _KEY.fullmatch(key))
        or not _json(request.headers.get("content-type"))
    ):
        return None
    try:
        wanted = TransitionCreate.model_validate_json(body)
    except ValidationError:
        return None
    uow: UnitOfWork = request.app.state.uow
    transition_id = await run_in_threadpool(record, uow, caller, attempt_id, wanted, key)
    if transition_id is None:
        return None
    return Response(_ACCEPTED % transition_id, 202, media_type="application/json")
