"""Small dependencies shared by the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BeforeValidator

from api.access import MAX_ID, Context, parse_id
from api.auth import Caller
from proctoring.db import UnitOfWork

# Dependencies here are `async def` on purpose: they do no I/O, and a plain `def` would cost a
# trip through the threadpool each, on every request.

# Shown in the OpenAPI document; the route class has already checked the token.
bearer = HTTPBearer(
    auto_error=False,
    description="A JWT signed with the configured key, with the claims an Open edX LMS puts "
    "in its tokens: user_id, preferred_username, email, administrator; exp is checked.",
)


def request_uow(request: Request) -> UnitOfWork:
    """The request's own unit of work where the route class opened one, else the app's."""
    uow: UnitOfWork = getattr(request.state, "uow", None) or request.app.state.uow
    return uow


async def get_uow(request: Request) -> UnitOfWork:
    return request_uow(request)


async def get_caller(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
) -> Caller:
    caller: Caller = request.state.caller
    return caller


async def get_access(request: Request) -> Context:
    access: Context = request.state.access
    return access


UoW = Annotated[UnitOfWork, Depends(get_uow)]
CallerDep = Annotated[Caller, Depends(get_caller)]
AccessDep = Annotated[Context, Depends(get_access)]


def _ascii_digits(raw: object) -> object:
    """pydantic reads " 12", "+12" and "1_2" as 12; an id in a path is ASCII digits alone."""
    if isinstance(raw, str) and parse_id(raw) is None:
        raise ValueError("must be a positive integer written in ASCII digits")
    return raw


AsciiId = BeforeValidator(_ascii_digits)
AttemptIdPath = Annotated[int, Path(ge=1, le=MAX_ID, examples=[12]), AsciiId]
ExamIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, examples=[7]), AsciiId]
UserIdPath = Annotated[int, Path(ge=1, le=MAX_ID, examples=[42]), AsciiId]
TransitionIdPath = Annotated[int, Path(ge=1, le=MAX_ID, examples=[1001]), AsciiId]
CourseIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=255,
        pattern=r"^[^\x00]+$",
        examples=["course-v1:edX+DemoX+Demo_Course"],
    ),
]
