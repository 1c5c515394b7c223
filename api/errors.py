"""Every error is `{"detail": "<sentence>"}` with the right status; no input yields a 500."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from api.auth import Unauthenticated
from proctoring.errors import Conflict, DomainError, Forbidden, Invalid, NotFound

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[DomainError], int] = {
    NotFound: 404,
    Conflict: 409,
    Invalid: 422,
    Forbidden: 403,
}

STORE_DOWN = "The store is unreachable; nothing was accepted. Try again shortly."


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def sentence(errors: list[Any]) -> str:
    """One sentence from pydantic's list of problems."""
    if not errors:
        return "The request is not valid."
    first = errors[0]
    if first.get("type") == "json_invalid":
        return "The body is not valid JSON."
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
    what = str(first.get("msg", "is not valid")).rstrip(".")
    if first.get("type") == "missing":
        what = "is required"
    elif first.get("type") == "extra_forbidden":
        what = "is not a field of this request"
    else:
        what = f"is not valid: {what[0].lower()}{what[1:]}" if what else "is not valid"
    more = len(errors) - 1
    return f"{where} {what}" + (f" (and {more} more problem{'s' * (more > 1)})." if more else ".")


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (RFC 9110 §15.5.6): Starlette's Allow
    names only those of the first route whose path matched."""
    allowed = [
        method
        for method in METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]
    return ", ".join(allowed)


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain(request: Request, exc: DomainError) -> JSONResponse:
        return problem(STATUS_BY_ERROR.get(type(exc), 400), exc.detail)

    @app.exception_handler(Unauthenticated)
    async def unauthenticated(request: Request, exc: Unauthenticated) -> JSONResponse:
        return problem(401, str(exc), {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(422, sentence(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "The request is not valid."
        if exc.status_code == 400 and "parsing the body" in detail:
            detail = "The body could not be read: send UTF-8 JSON."
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"There is nothing at {request.url.path}."
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}."
            headers = {**(headers or {}), "Allow": allowed_methods(request)}
        return problem(exc.status_code, detail, headers)

    @app.exception_handler(sqlalchemy.exc.OperationalError)
    @app.exception_handler(sqlalchemy.exc.InterfaceError)
    @app.exception_handler(sqlalchemy.exc.TimeoutError)
    async def store_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("store unreachable: %s", type(exc).__name__)
        return problem(503, STORE_DOWN, {"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem(500, "An unexpected error occurred; it has been logged.")
