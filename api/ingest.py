"""The common case of a transition request, answered before the framework's stack.

`POST /v1/attempts/{id}/transitions` is the route the LMS calls for every click of every
learner. Its common case (a valid token and body, a caller with the right to the attempt, a key
not used before) is decided and recorded by one `INSERT … SELECT … RETURNING` in autocommit:
the SELECT holds the attempt with FOR KEY SHARE, finds the caller's right to it (owner, global
staff, or staff of its course) and the request's source, and the INSERT takes the row's id only
after that lock, as `proctoring.transitions.record_transition` does. The answer is sent once the
row is committed; the wake-up follows it, as from any commit (docs/design.md, rule 1).

`IngestLane` does this as an ASGI layer in front of the app's middleware (api/app.py puts it
there), applying the app's body limit and request metrics to what it answers; on PostgreSQL
with psycopg's async connections (no thread), elsewhere in one trip to a thread.
Everything else (a token, body or key that does not validate, no such attempt, no right to it,
a key seen before) inserts nothing and goes on to the app with the body it sent, whose full path
gives every answer it gives today: 401, 403, 404, 409, 422, or 200 with the first request.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import time
import weakref
from collections.abc import Callable
from typing import Any

import psycopg
import sqlalchemy.exc
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import ValidationError
from sqlalchemy import (
    BigInteger,
    Boolean,
    bindparam,
    case,
    exists,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.dml import ReturningInsert
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.access import parse_id
from api.auth import Caller, Unauthenticated, read_token
from api.callers import known_users, write_user
from api.errors import STORE_DOWN
from api.middleware import LATENCY, REQUESTS, send_json
from api.schemas import IDEMPOTENCY_KEY_PATTERN, TransitionCreate
from config import get_settings
from proctoring import transitions
from proctoring.clock import utcnow
from proctoring.db import UnitOfWork, Wakeup
from proctoring.ledger import APPLY
from proctoring.models import Attempt, CourseStaff, Exam, Transition, TransitionState
from proctoring.statuses import Source

log = logging.getLogger(__name__)

_PATH = re.compile(r"/v1/attempts/([^/]+)/transitions")
# What the metrics label the lane's answers with: the route's template, as api/middleware.py.
_TEMPLATE = "/v1/attempts/{attempt_id}/transitions"
_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
# A pooled connection idle for longer than this is pinged before it is used again.
IDLE_CHECK_SECONDS = 1.0
_STORE_ERRORS = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    PoolTimeout,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
)


@functools.cache
def _statement(dialect: str) -> ReturningInsert[Any]:
    """Built once per dialect: PostgreSQL or SQLite.

    Who may post and with what source is `api.access.transition_poster`'s rule, written here
    as SQL; tests/api/test_ingest.py holds the two to the same answers for every caller.
    """
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


@functools.cache
def _compiled(dialect: Dialect) -> tuple[str, dict[str, Any]]:
    """The statement as psycopg takes it, and the values of its literals."""
    compiled = _statement("postgresql").compile(dialect=dialect)
    return compiled.string, dict(compiled.params)


def _params(
    caller: Caller, attempt_id: int, request: TransitionCreate, key: str | None
) -> dict[str, Any]:
    return {
        "caller": caller.user_id,
        "relaying": request.acting_for_learner,
        "is_staff": caller.is_staff,
        "attempt_id": attempt_id,
        "to_status": request.to_status.value,
        "key": transitions.stored_key(transitions.scoped_key(caller.user_id, key)),
        "received_at": utcnow(),
    }


def record(
    uow: UnitOfWork, caller: Caller, attempt_id: int, request: TransitionCreate, key: str | None
) -> int | None:
    """The new request's id, committed; None when the full path must decide. In a thread."""
    with uow.autocommit() as connection:
        if known_users.changed(caller):
            write_user(connection, caller)
        transition_id: int | None = connection.execute(
            _statement(connection.dialect.name), _params(caller, attempt_id, request, key)
        ).scalar()
    return transition_id


class Shortcut:
    """Records the common case: on PostgreSQL from the event loop the app was started on,
    with connections of its own (opened at the first request, closed when the app stops);
    else, or for a caller whose user row must be written first, in a thread through the
    app's unit of work."""

    def __init__(self, uow: Callable[[], UnitOfWork], pool_size: int = 20) -> None:
        self._uow = uow  # the app's, read when used: a test may give the app another
        self.pool_size = pool_size
        # Per event loop the app was started on (one when served; tests may start several).
        self._pools: dict[asyncio.AbstractEventLoop, AsyncConnectionPool | None] = {}
        self._used: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], float] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def uow(self) -> UnitOfWork:
        return self._uow()

    async def start(self) -> None:
        """Serve from this event loop (the app's lifespan calls this)."""
        self._pools.setdefault(asyncio.get_running_loop(), None)

    async def close(self) -> None:
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.close()

    async def _connections(self) -> AsyncConnectionPool | None:
        """This loop's connections, opened once, where the app's database is PostgreSQL
        through psycopg; None elsewhere, or when the app was not started on this loop."""
        loop = asyncio.get_running_loop()
        if loop not in self._pools:
            return None
        pool = self._pools[loop]
        if pool is None:
            engine = self.uow.engine
            if (engine.dialect.name, engine.dialect.driver) != ("postgresql", "psycopg"):
                del self._pools[loop]  # nothing to open: a thread does the work
                return None
            pool = self._pools[loop] = AsyncConnectionPool(
                engine.url.set(drivername="postgresql").render_as_string(hide_password=False),
                min_size=1,
                max_size=self.pool_size,
                kwargs={"autocommit": True},
                check=self._check,
                open=False,
            )
            await pool.open(wait=False)
        return pool

    async def _check(self, connection: psycopg.AsyncConnection[Any]) -> None:
        """A connection idle for a while is pinged before a request uses it, so one that the
        database dropped (a restart) costs no request a 503, as the app's pool_pre_ping
        does; one used a moment ago is not: under load that ping was a tenth of the work."""
        if time.monotonic() - self._used.get(connection, 0.0) > IDLE_CHECK_SECONDS:
            await AsyncConnectionPool.check_connection(connection)

    async def record(
        self, caller: Caller, attempt_id: int, request: TransitionCreate, key: str | None
    ) -> int | None:
        """The new request's id, committed and woken; None when the app must decide."""
        pool = None if known_users.changed(caller) else await self._connections()
        if pool is None:
            transition_id = await run_in_threadpool(
                record, self.uow, caller, attempt_id, request, key
            )
        else:
            sql, literals = _compiled(self.uow.engine.dialect)
            params = {**literals, **_params(caller, attempt_id, request, key)}
            async with pool.connection(timeout=2.0) as connection:
                cursor = await connection.execute(sql, params)
                row = await cursor.fetchone()
                self._used[connection] = time.monotonic()
            transition_id = None if row is None else int(row[0])
        if transition_id is not None:
            self.uow.publish([Wakeup(APPLY, transition_id)])
        return transition_id


class IngestLane:
    """The common case of `POST /v1/attempts/{id}/transitions`, answered before the app's
    middleware and routing (see the module's text), with the body limit and the request
    metrics the app applies; every other request goes on to the app with its body as sent."""

    def __init__(self, app: ASGIApp, shortcut: Shortcut, max_bytes: int) -> None:
        self.app = app
        self.shortcut = shortcut
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        matched = (
            _PATH.fullmatch(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        if matched is None:
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        body, whole, more = await _read_body(receive, self.max_bytes)
        status = 0
        try:
            if whole:
                status = await self._answer(scope, matched.group(1), body, send)
        except _STORE_ERRORS as exc:
            log.warning("store unreachable: %s", type(exc).__name__)
            detail = json.dumps({"detail": STORE_DOWN}).encode()
            await send_json(send, 503, detail, [(b"retry-after", b"5")])
            status = 503
        if status:
            REQUESTS.labels("POST", _TEMPLATE, str(status)).inc()
            LATENCY.labels("POST", _TEMPLATE).observe(time.perf_counter() - began)
            return
        # Not answered here: the app answers, its limit and metrics included, with the body
        # read so far given back first (all of it, or what came before the limit).
        await self.app(scope, _replay(body, more, receive), send)

    async def _answer(self, scope: Scope, raw_id: str, body: bytes, send: Send) -> int:
        """The status answered, or 0 when the app is to answer."""
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, value)  # the first of a repeated header, as Starlette
        attempt_id = parse_id(raw_id)
        raw_key = headers.get(b"idempotency-key")
        key = None if raw_key is None else raw_key.decode("latin-1")
        if (
            attempt_id is None
            or (key is not None and not _KEY.fullmatch(key))
            or not _json(headers.get(b"content-type"))
        ):
            return 0
        try:
            authorization = headers.get(b"authorization")
            caller = read_token(
                None if authorization is None else authorization.decode("latin-1"), get_settings()
            )
            wanted = TransitionCreate.model_validate_json(body)
        except (Unauthenticated, ValidationError):
            return 0
        transition_id = await self.shortcut.record(caller, attempt_id, wanted, key)
        if transition_id is None:
            return 0
        await send_json(send, 202, b'{"transition_id":%d,"state":"pending"}' % transition_id)
        return 202


def _json(content_type: bytes | None) -> bool:
    """Whether FastAPI would read the body as JSON (no type, application/json or */*+json)."""
    if content_type is None:
        return True
    kind = content_type.decode("latin-1").partition(";")[0].strip().lower()
    subtype = kind.removeprefix("application/")
    return subtype != kind and (subtype == "json" or subtype.endswith("+json"))


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool, bool]:
    """What of the body was read; whether it is whole and within the limit (else the app
    answers, with its own limit); whether more of it is to come."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False, False  # the client went away
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more = bool(message.get("more_body", False))
        if size > limit or not more:
            return b"".join(chunks), size <= limit and not more, more


def _replay(body: bytes, more: bool, receive: Receive) -> Receive:
    """What was read, once more, for the app; then whatever the client sends next."""
    given = False

    async def again() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return again
