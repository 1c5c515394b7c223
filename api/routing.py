"""Route classes that authenticate, and decide access, before FastAPI reads the body.

FastAPI decodes a JSON body before it runs any dependency, so a dependency cannot answer 401
or 403 to a request whose body is also malformed. These classes wrap the handler instead:
credentials first, then who may act, then the body.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute
from sqlalchemy.pool import QueuePool
from starlette.concurrency import run_in_threadpool

from api.access import Check, Context
from api.auth import Caller, Unauthenticated, read_token, verify_webhook
from api.callers import known_users, write_user
from api.deps import get_caller
from config import get_settings
from proctoring.db import UnitOfWork
from proctoring.errors import NotFound
from proctoring.providers import provider_config

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep to read
        return None


class Admission:
    """A request's place among those holding a database session between two thread hops.

    A user route checks access in one thread and runs its handler in another, with the
    session (and its pooled connection) held in between. Were more requests to do that at
    once than the pool has connections, threads waiting for a connection could hold every
    worker thread while the requests holding the connections wait for a thread. Admitting
    fewer requests than the pool has connections rules that out: some connection is always
    free or held by a request that can go on.
    """

    def __init__(self, places: anyio.Semaphore) -> None:
        self._places = places
        self._inside = False

    async def enter(self) -> None:
        await self._places.acquire()
        self._inside = True

    def leave(self) -> None:
        """Give the place up; a route that goes on to wait without a session calls this."""
        if self._inside:
            self._inside = False
            self._places.release()


def admission_places(app: Any) -> anyio.Semaphore:
    """Fewer places than the app's pool keeps connections (one less than its size); made at
    the first request, on the event loop that serves them all."""
    places: anyio.Semaphore | None = getattr(app.state, "admission", None)
    if places is None:
        pool = app.state.uow.engine.pool
        size = pool.size() - 1 if isinstance(pool, QueuePool) else 1
        places = app.state.admission = anyio.Semaphore(max(1, size))
    return places


def _check_access(
    uow: UnitOfWork, caller: Caller, check: Check, request: Request, body: Any
) -> Context:
    """Opens the request's transaction, which the route then continues and commits: one
    connection and one commit per request. The caller's user row, when the token says
    something new of it, is written first, on its own (see `people.refresh_user`)."""
    if known_users.changed(caller):
        with uow.autocommit() as connection:
            write_user(connection, caller)
    session = uow.session()
    ctx = Context(
        caller=caller,
        session=session,
        path=request.path_params,
        query=request.query_params,
        body=body,
    )
    check(ctx)
    return ctx


class UserRoute(APIRoute):
    """Users and the LMS: a JWT, then the route's access check."""

    def get_route_handler(self) -> Handler:
        handle = super().get_route_handler()
        check: Check | None = getattr(self.endpoint, "access_check", None)
        if check is None:
            raise TypeError(f"route {self.path} has no access check; mark it with @requires")

        async def authenticated(request: Request) -> Response:
            caller = read_token(request.headers.get("authorization"), get_settings())
            body = _json_or_none(await request.body())
            request.state.caller = caller
            uow = request.state.uow = request.app.state.uow.for_request()
            admission = request.state.admission = Admission(admission_places(request.app))
            await admission.enter()
            try:
                request.state.access = await run_in_threadpool(
                    _check_access, uow, caller, check, request, body
                )
                response = await handle(request)
            finally:
                await run_in_threadpool(uow.close)
                admission.leave()
            return response

        return authenticated


def user_router(tag: str) -> APIRouter:
    """Routes of one tag for users and the LMS. The route class reads the token; the
    dependency shows the bearer scheme in the document, for every route alike."""
    return APIRouter(route_class=UserRoute, tags=[tag], dependencies=[Depends(get_caller)])


class VendorRoute(APIRoute):
    """Proctoring vendors: the provider in the path, then its Standard Webhooks signature."""

    def get_route_handler(self) -> Handler:
        handle = super().get_route_handler()

        async def signed(request: Request) -> Response:
            name = request.path_params.get("provider", "")
            config = provider_config(name)
            if config is None:
                # No secret to check against: nothing more is looked at.
                raise NotFound(f"provider {name!r} is not configured")
            body = await request.body()
            headers = {k.lower(): v for k, v in request.headers.items()}
            webhook_id = verify_webhook(config, body, headers)
            if len(webhook_id) > 255 or "\x00" in webhook_id:
                raise Unauthenticated(
                    "The webhook-id header must be at most 255 characters, without NUL."
                )
            request.state.provider = name
            request.state.webhook_id = webhook_id
            return await handle(request)

        return signed
