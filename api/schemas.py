"""Request and answer shapes: the contract an LMS integrator or a vendor reads in /docs."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

from proctoring.statuses import Status


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


NoNul = AfterValidator(_no_nul)

CourseId = Annotated[str, StringConstraints(min_length=1, max_length=255), NoNul]
ContentId = Annotated[str, StringConstraints(min_length=1, max_length=255), NoNul]
Name = Annotated[str, StringConstraints(min_length=1, max_length=255), NoNul]
ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=255), NoNul]


def _contact_link(value: str) -> str:
    """A contact link (docs/behaviour.md, "E-mail"): one a learner can follow from an e-mail,
    and no other kind (javascript:, data:, file:…)."""
    scheme, colon, rest = value.partition(":")
    web = scheme.lower() in ("https", "http") and rest.startswith("//") and len(rest) > 2
    mail = scheme.lower() == "mailto" and bool(rest)
    if not colon or not (web or mail) or any(c.isspace() or ord(c) < 32 for c in value):
        raise ValueError("must be an https://, http:// or mailto: link, without spaces")
    return value


ContactUrl = Annotated[
    str, StringConstraints(min_length=1, max_length=500), NoNul, AfterValidator(_contact_link)
]
Username = Annotated[str, StringConstraints(min_length=1, max_length=150), NoNul]
Email = Annotated[
    str, StringConstraints(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$"), NoNul
]
AttemptCode = Annotated[str, StringConstraints(min_length=1, max_length=64), NoNul]
Word = Annotated[str, StringConstraints(min_length=1, max_length=100), NoNul]
Comments = Annotated[str, StringConstraints(max_length=20_000), NoNul]
UserId = Annotated[int, Field(ge=1, le=2**63 - 1, examples=[42])]
ExamId = Annotated[int, Field(ge=1, le=2**31 - 1, examples=[7])]
RowId = Annotated[int, Field(ge=1, le=2**63 - 1)]
Minutes = Annotated[int, Field(ge=0, le=100_000, examples=[90])]

COURSE_EXAMPLE = "course-v1:edX+DemoX+Demo_Course"
CONTENT_EXAMPLE = "block-v1:edX+DemoX+Demo_Course+type@sequential+block@final"


class Problem(BaseModel):
    """Every error: one sentence saying what went wrong."""

    detail: str = Field(examples=["attempt 12 does not exist"])


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- exams ------------------------------------------------------------------------------------


class ExamFields(Strict):
    exam_name: Name = Field(examples=["Final exam"])
    time_limit_mins: Minutes
    due_date: AwareDatetime | None = Field(default=None, examples=["2026-12-20T23:59:00Z"])
    external_id: ExternalId | None = None
    is_proctored: bool = True
    is_practice_exam: bool = False
    is_active: bool = True
    provider: Name | None = Field(
        default=None, description="Vendor name; the configured default when left out."
    )


class ExamCreate(ExamFields):
    course_id: CourseId = Field(examples=[COURSE_EXAMPLE])
    content_id: ContentId = Field(examples=[CONTENT_EXAMPLE])


def _not_given(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _not_cleared() -> Any:
    """A field that may be left out (not changed) but not cleared: `null` is not valid, and
    the schema shows neither null nor a default."""
    return Field(default=None, json_schema_extra=_not_given)


class ExamChange(Strict):
    """Only the fields given are changed; `null` clears the ones that may be empty."""

    exam_name: Name | SkipJsonSchema[None] = _not_cleared()
    time_limit_mins: Minutes | SkipJsonSchema[None] = _not_cleared()
    due_date: AwareDatetime | None = None
    external_id: ExternalId | None = None
    is_proctored: bool | SkipJsonSchema[None] = _not_cleared()
    is_practice_exam: bool | SkipJsonSchema[None] = _not_cleared()
    is_active: bool | SkipJsonSchema[None] = _not_cleared()
    provider: Name | None = None

    @field_validator(
        "exam_name", "time_limit_mins", "is_proctored", "is_practice_exam", "is_active"
    )
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Runs only on given values: a field left out keeps its default and is not changed.
        if value is None:
            raise ValueError("may be left out but cannot be null")
        return value


class ExamOut(BaseModel):
    exam_id: int
    course_id: str
    content_id: str
    exam_name: str
    time_limit_mins: int
    due_date: dt.datetime | None
    external_id: str | None
    is_proctored: bool
    is_practice_exam: bool
    is_active: bool
    provider: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


# --- courses and users ------------------------------------------------------------------------


class CoursePut(Strict):
    name: Name | None = Field(default=None, examples=["Demonstration Course"])
    contact_url: ContactUrl | None = Field(
        default=None,
        description="An https://, http:// or mailto: link.",
        examples=["https://example.com/contact"],
    )


class CourseOut(BaseModel):
    course_id: str
    name: str | None
    contact_url: str | None


class CourseStaffOut(BaseModel):
    course_id: str
    user_id: int


class UserPut(Strict):
    username: Username = Field(examples=["ada"])
    email: Email = Field(examples=["ada@example.com"])
    is_staff: bool | None = Field(default=None, description="Global staff; unchanged if left out.")


class UserOut(BaseModel):
    user_id: int
    username: str
    email: str
    is_staff: bool


class CreditOut(BaseModel):
    course_id: str
    namespace: str
    name: str
    status: str


# --- attempts and transitions -----------------------------------------------------------------


class AttemptCreate(Strict):
    user_id: UserId | None = Field(
        default=None, description="Staff only: the learner to create the attempt for."
    )
    taking_as_proctored: bool = Field(
        default=True, description="Always false at an exam that is not proctored."
    )
    external_id: ExternalId | None = Field(
        default=None,
        description="Staff or the LMS only: the vendor's session id, held by one live attempt "
        "of that vendor at most.",
    )


class AttemptOut(BaseModel):
    attempt_id: int
    exam_id: int
    user_id: int
    status: Status
    attempt_code: str
    external_id: str | None
    taking_as_proctored: bool
    is_sample_attempt: bool
    started_at: dt.datetime | None
    completed_at: dt.datetime | None
    allowed_time_limit_mins: int | None
    created_at: dt.datetime
    updated_at: dt.datetime


# An Idempotency-Key header: printable ASCII, 1 to 200 characters (api/routes/transitions.py
# declares it; api/ingest.py checks it before the route does).
IDEMPOTENCY_KEY_PATTERN = r"[\x21-\x7e]{1,200}"


class TransitionCreate(Strict):
    to_status: Status = Field(examples=["started"])
    acting_for_learner: bool = Field(
        default=False,
        description="A staff token relaying a learner's click (the LMS): the request is the "
        "learner's, with the learner's rights.",
    )


TransitionState = Literal["pending", "applied", "noop", "rejected", "failed"]


class TransitionOut(BaseModel):
    transition_id: int
    attempt_id: int | None
    to_status: Status
    source: Literal["learner", "staff", "vendor", "system", "cascade"]
    state: TransitionState
    from_status: Status | None
    result_status: Status | None
    detail: str | None
    received_at: dt.datetime
    applied_at: dt.datetime | None


class TransitionAccepted(BaseModel):
    transition_id: int
    state: TransitionState


# --- vendors ----------------------------------------------------------------------------------


class ReviewIn(BaseModel):
    """A vendor's review. Name the attempt by ``attempt_code`` or by ``external_id``."""

    model_config = ConfigDict(extra="ignore")

    attempt_code: AttemptCode | None = None
    external_id: ExternalId | None = None
    status: Word = Field(
        description="The vendor's word, from its configured vocabulary.", examples=["passed"]
    )
    reviewed_by: Name | None = Field(
        default=None, description="Set when a human reviewed the session."
    )
    comments: Comments = ""


class ReviewOut(BaseModel):
    review_id: int
    attempt_id: int
    outcome: Status
    state: Literal["applied", "held", "stored"]
    transition_id: int | None


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    database: Literal["ok", "unreachable"]
    broker: Literal["ok", "unreachable"]
