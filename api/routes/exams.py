"""Exams: created and changed by course staff, read by anyone signed in."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query

from api.access import any_user, course_staff, requires
from api.deps import CallerDep, CourseIdPath, ExamIdPath, UoW
from api.present import errors, exam_out
from api.routing import UserRoute
from api.schemas import CONTENT_EXAMPLE, COURSE_EXAMPLE, ExamChange, ExamCreate, ExamOut
from proctoring import exams

router = APIRouter(route_class=UserRoute, tags=["exams"])


@router.post(
    "/v1/exams",
    status_code=201,
    response_model=ExamOut,
    responses=errors(401, 403, 404, 409),
    summary="Create an exam",
)
@requires(course_staff)
def create_exam(
    uow: UoW,
    caller: CallerDep,
    exam: Annotated[
        ExamCreate,
        Body(
            openapi_examples={
                "proctored": {
                    "summary": "A proctored final",
                    "value": {
                        "course_id": COURSE_EXAMPLE,
                        "content_id": CONTENT_EXAMPLE,
                        "exam_name": "Final exam",
                        "time_limit_mins": 90,
                    },
                }
            }
        ),
    ],
) -> ExamOut:
    """Course staff create an exam; a second one with the same (course, content) is a 409."""
    with uow() as session:
        return exam_out(exams.create_exam(session, **exam.model_dump()))


@router.patch(
    "/v1/exams/{exam_id}",
    response_model=ExamOut,
    responses=errors(401, 403, 404),
    summary="Change an exam",
)
@requires(course_staff)
def update_exam(
    uow: UoW,
    caller: CallerDep,
    exam_id: ExamIdPath,
    change: Annotated[
        ExamChange,
        Body(
            openapi_examples={
                "longer": {
                    "summary": "More time, and a due date",
                    "value": {"time_limit_mins": 120, "due_date": "2026-12-20T23:59:00Z"},
                },
                "retire": {"summary": "No longer offered", "value": {"is_active": False}},
            }
        ),
    ],
) -> ExamOut:
    """Only the fields given are changed."""
    with uow() as session:
        return exam_out(exams.update_exam(session, exam_id, change.model_dump(exclude_unset=True)))


@router.get(
    "/v1/exams/{exam_id}", response_model=ExamOut, responses=errors(401, 404), summary="An exam"
)
@requires(any_user)
def get_exam(uow: UoW, caller: CallerDep, exam_id: ExamIdPath) -> ExamOut:
    with uow() as session:
        return exam_out(exams.get_exam(session, exam_id))


@router.get(
    "/v1/courses/{course_id}/exams",
    response_model=list[ExamOut],
    responses=errors(401),
    summary="The exams of a course",
)
@requires(any_user)
def list_exams(
    uow: UoW,
    caller: CallerDep,
    course_id: CourseIdPath,
    active_only: Annotated[bool, Query(description="Only active exams.")] = False,
    practice: Annotated[bool, Query(description="Only active practice proctored exams.")] = False,
) -> list[ExamOut]:
    with uow() as session:
        found = (
            exams.list_practice_exams(session, course_id)
            if practice
            else exams.list_course_exams(session, course_id, active_only=active_only)
        )
        return [exam_out(e) for e in found]


@router.get(
    "/v1/courses/{course_id}/exams/{content_id}",
    response_model=ExamOut,
    responses=errors(401, 404),
    summary="An exam by its content id",
)
@requires(any_user)
def get_exam_by_content(
    uow: UoW,
    caller: CallerDep,
    course_id: CourseIdPath,
    content_id: Annotated[str, Path(min_length=1, max_length=255, pattern=r"^[^\x00]+$")],
) -> ExamOut:
    with uow() as session:
        return exam_out(exams.get_exam_by_content(session, course_id, content_id))
