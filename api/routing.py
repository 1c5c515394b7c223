"""Route classes that authenticate, and decide access, before FastAPI reads the body.

FastAPI decodes a JSON body before it runs any dependency, so a dependency cannot answer 401
or 403 to a request whose body is also malformed. These classes wrap the handler instead:
credentials first, then who may act, then the body.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from api.access import Check, Context
from api.auth import Caller, Unauthenticated, read_token, verify_webhook
from config import get_settings
from proctoring import people
from proctoring.db import UnitOfWork
from proctoring.errors import NotFound
from proctoring.providers import provider_config

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep to read
        return None


class _KnownUsers:
    """The last claims written per user in this process: the upsert is skipped when the token
    says nothing new, which is almost always."""

    def __init__(self, size: int = 50_000) -> None:
        self._seen: dict[int, Caller] = {}
        self._size = size

    def changed(self, caller: Caller) -> bool:
        return self._seen.get(caller.user_id) != caller

    def remember(self, caller: Caller) -> None:
        if len(self._seen) >= self._size:
            self._seen.clear()
        self._seen[caller.user_id] = caller

    def forget(self) -> None:
        self._seen.clear()


known_users = _KnownUsers()


def _check_access(
    uow: UnitOfWork, caller: Caller, check: Check, request: Request, body: Any
) -> Context:
    """Runs in the request's transaction, which the route then continues and commits: one
    connection and one commit per request."""
    session = uow.session()
    if known_users.changed(caller):
        people.upsert_user(
            session, caller.user_id, caller.username, caller.email, is_staff=caller.is_staff
        )
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
            try:
                request.state.access = await run_in_threadpool(
                    _check_access, uow, caller, check, request, body
                )
                response = await handle(request)
            finally:
                await run_in_threadpool(uow.close)
            known_users.remember(caller)  # the request's commit wrote the user, if it had to
            return response

        return authenticated


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
