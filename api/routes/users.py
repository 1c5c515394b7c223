"""Users as the LMS knows them, and their credit."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from api.access import credit_reader, global_staff, requires
from api.deps import UoW, UserIdPath
from api.present import documented, examples
from api.routing import user_router
from api.schemas import CreditOut, UserOut, UserPut
from proctoring import credit, people

router = user_router("users")


LEARNER = {"username": "ada", "email": "ada@example.com"}
UserBody = Annotated[UserPut, examples({"learner": ("A learner as the LMS knows them", LEARNER)})]


@router.put("/v1/users/{user_id}", **documented("Create or update a user (the LMS)", 401, 403))
@requires(global_staff)
def put_user(uow: UoW, user_id: UserIdPath, user: UserBody) -> UserOut:
    with uow() as session:
        row = people.upsert_user(
            session, user_id, user.username, user.email, is_staff=user.is_staff
        )
        return UserOut(
            user_id=row.user_id, username=row.username, email=row.email, is_staff=row.is_staff
        )


@router.get(
    "/v1/users/{user_id}/credit", **documented("A learner's credit requirement statuses", 401, 403)
)
@requires(credit_reader)
def get_credit(
    uow: UoW,
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
