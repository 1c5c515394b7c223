"""Users, courses and course staff: who is who, and who may act where."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Connection, Executable, delete, or_, select
from sqlalchemy.orm import Session

from proctoring.db import upsert_insert
from proctoring.errors import NotFound
from proctoring.models import Course, CourseStaff, User


def upsert_user(
    session: Session, user_id: int, username: str, email: str, *, is_staff: bool | None = None
) -> User:
    """Create or refresh a user; ``is_staff`` None leaves the flag as it is. The same new
    user's first requests may race this one: the upsert lets one insert and the rest update."""
    session.execute(_upsert_user(session, user_id, username, email, is_staff))
    return session.get_one(User, user_id, populate_existing=True)


def refresh_user(
    connection: Connection, user_id: int, username: str, email: str, *, is_staff: bool
) -> None:
    """Create or refresh a user as a token describes them, in one statement committed on its
    own (give it an autocommit connection).

    A request must not hold a lock on its caller's row while it goes on: every other request
    of that user (the LMS sends all of its requests as one user) would queue behind it, and
    with all of a process's threads queued, the request holding the lock could never finish.
    """
    connection.execute(_upsert_user(connection, user_id, username, email, is_staff))


def _upsert_user(
    bind: Session | Connection, user_id: int, username: str, email: str, is_staff: bool | None
) -> Executable:
    """Insert the user, or update the fields given that differ; the same fields again write
    nothing, so ``updated_at`` says when something last changed."""
    insert = upsert_insert(bind)
    # The time stamps come from their column defaults; a conflict keeps created_at and takes
    # updated_at from the row that would have been inserted.
    statement = insert(User).values(
        user_id=user_id, username=username, email=email, is_staff=bool(is_staff)
    )
    new = statement.excluded
    given = ["username", "email"] if is_staff is None else ["username", "email", "is_staff"]
    statement = statement.on_conflict_do_update(
        index_elements=[User.user_id],
        set_={**{name: new[name] for name in given}, "updated_at": new.updated_at},
        where=or_(*(getattr(User, name).is_distinct_from(new[name]) for name in given)),
    )
    return cast(Executable, statement)


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} is unknown")
    return user


def ensure_course(session: Session, course_id: str) -> Course:
    course = session.get(Course, course_id)
    if course is None:
        course = Course(course_id=course_id)
        session.add(course)
        session.flush()
    return course


def put_course(
    session: Session, course_id: str, *, name: str | None, contact_url: str | None
) -> Course:
    course = ensure_course(session, course_id)
    course.name = name
    course.contact_url = contact_url
    return course


def grant_course_staff(session: Session, course_id: str, user_id: int) -> None:
    ensure_course(session, course_id)
    if session.get(CourseStaff, (course_id, user_id)) is None:
        session.add(CourseStaff(course_id=course_id, user_id=user_id))
        session.flush()


def revoke_course_staff(session: Session, course_id: str, user_id: int) -> bool:
    """Returns whether there was a grant to revoke."""
    result = session.execute(
        delete(CourseStaff).where(
            CourseStaff.course_id == course_id, CourseStaff.user_id == user_id
        )
    )
    return bool(getattr(result, "rowcount", 0))


def is_course_staff(session: Session, course_id: str, user_id: int) -> bool:
    return (
        session.scalar(
            select(CourseStaff.user_id).where(
                CourseStaff.course_id == course_id, CourseStaff.user_id == user_id
            )
        )
        is not None
    )


def course_staff_ids(session: Session, course_id: str) -> list[int]:
    return list(
        session.scalars(
            select(CourseStaff.user_id)
            .where(CourseStaff.course_id == course_id)
            .order_by(CourseStaff.user_id)
        )
    )
