"""Exams: created and changed by course staff, read by anyone signed in."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from api.access import any_user, course_staff, requires
from api.deps import CourseIdPath, ExamIdPath, UoW
from api.present import documented, exam_out, examples
from api.routing import user_router
from api.schemas import CONTENT_EXAMPLE, COURSE_EXAMPLE, ExamChange, ExamCreate, ExamOut
from proctoring import exams

router = user_router("exams")


ExamBody = Annotated[
    ExamCreate,
    examples(
        {
            "proctored": (
                "A proctored final",
                {
                    "course_id": COURSE_EXAMPLE,
                    "content_id": CONTENT_EXAMPLE,
                    "exam_name": "Final exam",
                    "time_limit_mins": 90,
                },
            )
        }
    ),
]


ExamChangeBody = Annotated[
    ExamChange,
    examples(
        {
            "longer": (
                "More time, and a due date",
                {"time_limit_mins": 120, "due_date": "2026-12-20T23:59:00Z"},
            ),
            "retire": ("No longer offered", {"is_active": False}),
        }
    ),
]


@router.post("/v1/exams", **documented("Create an exam", 401, 403, 404, 409, status_code=201))
@requires(course_staff)
def create_exam(uow: UoW, exam: ExamBody) -> ExamOut:
    """Course staff create an exam; a second one with the same (course, content) is a 409."""
    with uow() as session:
        return exam_out(exams.create_exam(session, **exam.model_dump()))


@router.patch("/v1/exams/{exam_id}", **documented("Change an exam", 401, 403, 404))
@requires(course_staff)
def update_exam(uow: UoW, exam_id: ExamIdPath, change: ExamChangeBody) -> ExamOut:
    """Only the fields given are changed."""
    with uow() as session:
        return exam_out(exams.update_exam(session, exam_id, change.model_dump(exclude_unset=True)))


@router.get("/v1/exams/{exam_id}", **documented("An exam", 401, 404))
@requires(any_user)
def get_exam(uow: UoW, exam_id: ExamIdPath) -> ExamOut:
    with uow() as session:
        return exam_out(exams.get_exam(session, exam_id))


@router.get("/v1/courses/{course_id}/exams", **documented("The exams of a course", 401))
@requires(any_user)
def list_exams(
    uow: UoW,
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
    **documented("An exam by its content id", 401, 404),
)
@requires(any_user)
def get_exam_by_content(
    uow: UoW,
    course_id: CourseIdPath,
    content_id: Annotated[str, Path(min_length=1, max_length=255, pattern=r"^[^\x00]+$")],
) -> ExamOut:
    with uow() as session:
        return exam_out(exams.get_exam_by_content(session, course_id, content_id))
