"""Courses and their staff; users as the LMS knows them, and their credit."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response

from api.access import course_staff, credit_reader, global_staff, requires
from api.deps import CallerDep, CourseIdPath, UoW, UserIdPath
from api.present import errors
from api.routing import UserRoute
from api.schemas import CourseOut, CoursePut, CourseStaffOut, CreditOut, UserOut, UserPut
from proctoring import credit, people

router = APIRouter(route_class=UserRoute)


@router.put(
    "/v1/courses/{course_id}",
    response_model=CourseOut,
    responses=errors(401, 403),
    tags=["courses"],
    summary="Name a course and its contact link",
)
@requires(course_staff)
def put_course(
    uow: UoW,
    caller: CallerDep,
    course_id: CourseIdPath,
    course: Annotated[
        CoursePut,
        Body(
            openapi_examples={
                "named": {
                    "summary": "A name and a contact link",
                    "value": {
                        "name": "Demonstration Course",
                        "contact_url": "https://example.com/contact",
                    },
                }
            }
        ),
    ],
) -> CourseOut:
    """The name is used in e-mails ("your course" when missing); the contact link too (the
    configured support URL when missing)."""
    with uow() as session:
        row = people.put_course(
            session, course_id, name=course.name, contact_url=course.contact_url
        )
        return CourseOut(course_id=row.course_id, name=row.name, contact_url=row.contact_url)


@router.put(
    "/v1/courses/{course_id}/staff/{user_id}",
    response_model=CourseStaffOut,
    responses=errors(401, 403),
    tags=["courses"],
    summary="Make a user staff of a course",
)
@requires(global_staff)
def grant_staff(
    uow: UoW, caller: CallerDep, course_id: CourseIdPath, user_id: UserIdPath
) -> CourseStaffOut:
    with uow() as session:
        people.grant_course_staff(session, course_id, user_id)
    return CourseStaffOut(course_id=course_id, user_id=user_id)


@router.delete(
    "/v1/courses/{course_id}/staff/{user_id}",
    status_code=204,
    responses=errors(401, 403),
    tags=["courses"],
    summary="Revoke a user's staff role in a course",
)
@requires(global_staff)
def revoke_staff(
    uow: UoW, caller: CallerDep, course_id: CourseIdPath, user_id: UserIdPath
) -> Response:
    """Idempotent: revoking a role that is not there is not an error."""
    with uow() as session:
        people.revoke_course_staff(session, course_id, user_id)
    return Response(status_code=204)


@router.put(
    "/v1/users/{user_id}",
    response_model=UserOut,
    responses=errors(401, 403),
    tags=["users"],
    summary="Create or update a user (the LMS)",
)
@requires(global_staff)
def put_user(
    uow: UoW,
    caller: CallerDep,
    user_id: UserIdPath,
    user: Annotated[
        UserPut,
        Body(
            openapi_examples={
                "learner": {
                    "summary": "A learner as the LMS knows them",
                    "value": {"username": "ada", "email": "ada@example.com"},
                }
            }
        ),
    ],
) -> UserOut:
    with uow() as session:
        row = people.upsert_user(
            session, user_id, user.username, user.email, is_staff=user.is_staff
        )
        return UserOut(
            user_id=row.user_id, username=row.username, email=row.email, is_staff=row.is_staff
        )


@router.get(
    "/v1/users/{user_id}/credit",
    response_model=list[CreditOut],
    responses=errors(401, 403),
    tags=["users"],
    summary="A learner's credit requirement statuses",
)
@requires(credit_reader)
def get_credit(
    uow: UoW,
    caller: CallerDep,
    user_id: UserIdPath,
    course_id: Annotated[
        str | None, Query(min_length=1, max_length=255, pattern=r"^[^\x00]+$")
    ] = None,
) -> list[CreditOut]:
    """The learner may read all of theirs; course staff name the course with ?course_id=."""
    with uow() as session:
        return [
            CreditOut(
                course_id=row.course_id, namespace=row.namespace, name=row.name, status=row.status
            )
            for row in credit.credit_of_user(session, user_id, course_id)
        ]
