"""Courses and their staff."""

from __future__ import annotations

from typing import Annotated

from fastapi import Response

from api.access import course_staff, global_staff, requires
from api.deps import CourseIdPath, UoW, UserIdPath
from api.present import documented, examples
from api.routing import user_router
from api.schemas import CourseOut, CoursePut, CourseStaffOut
from proctoring import people

router = user_router("courses")
# A user's staff role in a course: granted with PUT, revoked with DELETE.
STAFF_ROLE = "/v1/courses/{course_id}/staff/{user_id}"


NAMED = {"name": "Demonstration Course", "contact_url": "https://example.com/contact"}
CourseBody = Annotated[CoursePut, examples({"named": ("A name and a contact link", NAMED)})]


@router.put("/v1/courses/{course_id}", **documented("Name a course and its contact link", 401, 403))
@requires(course_staff)
def put_course(uow: UoW, course_id: CourseIdPath, course: CourseBody) -> CourseOut:
    """The name is used in e-mails ("your course" when missing); the contact link too (the
    configured support URL when missing)."""
    with uow() as session:
        row = people.put_course(
            session, course_id, name=course.name, contact_url=course.contact_url
        )
        return CourseOut(course_id=row.course_id, name=row.name, contact_url=row.contact_url)


@router.put(STAFF_ROLE, **documented("Make a user staff of a course", 401, 403))
@requires(global_staff)
def grant_staff(uow: UoW, course_id: CourseIdPath, user_id: UserIdPath) -> CourseStaffOut:
    with uow() as session:
        people.grant_course_staff(session, course_id, user_id)
    return CourseStaffOut(course_id=course_id, user_id=user_id)


@router.delete(
    STAFF_ROLE,
    **documented("Revoke a user's staff role in a course", 401, 403, status_code=204),
)
@requires(global_staff)
def revoke_staff(uow: UoW, course_id: CourseIdPath, user_id: UserIdPath) -> Response:
    """Idempotent: revoking a role that is not there is not an error."""
    with uow() as session:
        people.revoke_course_staff(session, course_id, user_id)
    return Response(status_code=204)
