"""Who may act where: decided from the path (and, for the course staff rule, the body) before
the body is validated."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from api.auth import Caller, storable
from proctoring import attempts, exams, people
from proctoring.errors import Forbidden, Invalid, NotFound
from proctoring.models import Attempt
from proctoring.statuses import Source
from proctoring.transitions import get_transition

NO_COURSE = "could not determine the course_id"
NOT_STAFF = "Must be a Staff User to Perform this request."
NOT_YOURS = "Learners may only act on their own attempts."
NO_SESSION = (
    "Only staff or the LMS may set external_id, the vendor's session id; "
    "leave it out to create your own attempt."
)


@dataclass
class Context:
    """What an access check sees: the caller, the raw path and query, the body if it is JSON."""

    caller: Caller
    session: Session
    path: Mapping[str, str]
    query: Mapping[str, str]
    body: Any
    # What the check found out, for the route to use.
    source: Source | None = None
    granted: dict[str, Any] = field(default_factory=dict)


Check = Callable[[Context], None]
F = TypeVar("F", bound=Callable[..., Any])


def requires(check: Check) -> Callable[[F], F]:
    """Mark a route with its access check; the route class runs it before the body is read."""

    def mark(endpoint: F) -> F:
        endpoint.access_check = check  # type: ignore[attr-defined]
        return endpoint

    return mark


MAX_ID = 2**63 - 1  # a signed 64-bit integer, as the database keeps ids
# ASCII only: str.isdigit() and int() also take "²", "①" and "٣", and int() refuses more than
# 4,300 digits with an error of its own.
_ASCII_ID = re.compile(r"[0-9]{1,19}")


def parse_id(raw: str, limit: int = MAX_ID) -> int | None:
    """One of proctorq's own numeric ids as written in a path, or None if it cannot be one."""
    if not _ASCII_ID.fullmatch(raw):
        return None
    value = int(raw)
    return value if 1 <= value <= limit else None


def _id(ctx: Context, name: str, limit: int = MAX_ID) -> int:
    value = parse_id(ctx.path.get(name, ""), limit)
    if value is None:
        raise Invalid(f"{name} must be a positive integer written in ASCII digits")
    return value


def _attempt(ctx: Context) -> Attempt:
    return attempts.get_attempt(ctx.session, _id(ctx, "attempt_id"))


def _exam_course(ctx: Context, exam_id: int) -> str:
    return exams.get_exam(ctx.session, exam_id).course_id


def _staff_of(ctx: Context, course_id: str | None) -> bool:
    if ctx.caller.is_staff:
        return True
    if course_id is None:
        raise Forbidden(NO_COURSE)
    if not storable(course_id):
        return False  # read before the body is validated: no course has such an id
    return people.is_course_staff(ctx.session, course_id, ctx.caller.user_id)


def _course_from_request(ctx: Context) -> str | None:
    """The course staff rule (docs/http.md): the course of the resource in the path (course,
    exam, attempt), else the body's exam_id, else the body's course_id."""
    if "course_id" in ctx.path:
        return ctx.path["course_id"]
    if "exam_id" in ctx.path:
        return _exam_course(ctx, _id(ctx, "exam_id", 2**31 - 1))
    if "attempt_id" in ctx.path:
        return _exam_course(ctx, _attempt(ctx).exam_id)
    body = ctx.body if isinstance(ctx.body, dict) else {}
    exam_id = body.get("exam_id")
    if isinstance(exam_id, int) and not isinstance(exam_id, bool) and 1 <= exam_id < 2**31:
        return _exam_course(ctx, exam_id)
    course_id = body.get("course_id")
    if isinstance(course_id, str) and course_id:
        return course_id
    return None


# --- the checks -------------------------------------------------------------------------------


def any_user(ctx: Context) -> None:
    """Any authenticated user."""


def global_staff(ctx: Context) -> None:
    if not ctx.caller.is_staff:
        raise Forbidden(NOT_STAFF)


def course_staff(ctx: Context) -> None:
    if ctx.caller.is_staff:
        return
    if not _staff_of(ctx, _course_from_request(ctx)):
        raise Forbidden(NOT_STAFF)


def attempt_reader(ctx: Context) -> None:
    """The attempt's owner, or staff of its course."""
    attempt = _attempt(ctx)
    _owner_or_staff(ctx, attempt)


def _owner_or_staff(ctx: Context, attempt: Attempt) -> None:
    if attempt.user_id == ctx.caller.user_id:
        return
    if not _staff_of(ctx, _exam_course(ctx, attempt.exam_id)):
        raise Forbidden(NOT_YOURS)


def transition_reader(ctx: Context) -> None:
    transition = get_transition(ctx.session, _id(ctx, "transition_id"))
    if transition.user_id == ctx.caller.user_id:
        return
    if not _staff_of(ctx, _exam_course(ctx, transition.exam_id)):
        raise Forbidden(NOT_YOURS)


def transition_poster(ctx: Context) -> None:
    """Who may set what (docs/behaviour.md): the owner's token, or staff relaying a learner's
    click, is the learner; staff of the course (or global staff) otherwise is staff."""
    attempt = _attempt(ctx)
    body = ctx.body if isinstance(ctx.body, dict) else {}
    relaying = body.get("acting_for_learner") is True
    if attempt.user_id == ctx.caller.user_id:
        ctx.source = Source.learner
        return
    if not _staff_of(ctx, _exam_course(ctx, attempt.exam_id)):
        raise Forbidden(NOT_YOURS)
    ctx.source = Source.learner if relaying else Source.staff


def attempt_creator(ctx: Context) -> None:
    """A learner for themselves; staff of the exam's course for anyone. The vendor's session
    id is staff's to give: a learner who could choose it could name another learner's session
    and receive that learner's review."""
    course_id = _exam_course(ctx, _id(ctx, "exam_id", 2**31 - 1))
    body = ctx.body if isinstance(ctx.body, dict) else {}
    user_id = body.get("user_id")
    if user_id is None or user_id == ctx.caller.user_id:
        if body.get("external_id") is not None and not _staff_of(ctx, course_id):
            raise Forbidden(NO_SESSION)
        return
    if not _staff_of(ctx, course_id):
        raise Forbidden(NOT_STAFF)


def credit_reader(ctx: Context) -> None:
    """The learner, or staff of the course asked about (?course_id=)."""
    if _id(ctx, "user_id") == ctx.caller.user_id or ctx.caller.is_staff:
        return
    course_id = ctx.query.get("course_id") or None
    if not _staff_of(ctx, course_id):
        raise Forbidden(NOT_STAFF)


__all__ = ["Context", "NotFound", "requires"]
