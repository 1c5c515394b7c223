"""What the demo will do: its people, exams and seats, and what each should end as."""

from __future__ import annotations

from dataclasses import dataclass, field

from config import ProviderConfig
from proctoring.statuses import Status, credit_value, sends_email

# course of its own, so their attempts never collide).
LMS_USER_ID = 900_000_000
FIRST_LEARNER_ID = LMS_USER_ID + 1
WAIT_SECONDS = 10  # per GET /v1/transitions/{id}?wait=
PATIENCE_SECONDS = 90.0  # for the workers to finish everything the demo asked for
FINAL_STATES = ("applied", "noop", "rejected", "failed")


class DemoError(Exception):
    """The demo cannot go on; the message is one sentence."""


@dataclass(frozen=True)
class ExamSpec:
    key: str
    name: str
    practice: bool = False


EXAMS = (
    ExamSpec("midterm", "Midterm"),
    ExamSpec("final", "Final exam"),
    ExamSpec("lab", "Lab exam"),
    ExamSpec("practice", "Practice exam", practice=True),
)


@dataclass(frozen=True)
class Review:
    word: str  # the vendor's word
    reviewed_by: str | None
    outcome: str  # the status it should lead to


@dataclass
class Seat:
    """One learner's attempt at one exam: what the demo does with it and what it expects."""

    learner: int
    exam: ExamSpec
    moves: tuple[str, ...] = ()  # what the learner sends: started, submitted
    review: Review | None = None
    declines: bool = False  # the learner declines it (after the reviews)
    cascaded: bool = False  # declined by a cascade, not by a request of its own
    attempt_id: int = 0
    attempt_code: str = ""
    status: str = "-"

    @property
    def path(self) -> list[str]:
        """The statuses the attempt should go through, in order."""
        steps = list(self.moves)
        if self.review:
            steps.append(self.review.outcome)
        if self.declines or self.cascaded:
            steps.append(Status.declined.value)
        return steps

    @property
    def expected(self) -> str:
        return (self.path or [Status.created.value])[-1]

    @property
    def expected_credit(self) -> str | None:
        values = [credit_value(Status(s)) for s in self.path]
        found = [v.value for v in values if v is not None]
        return found[-1] if found else None

    @property
    def expected_emails(self) -> int:
        if self.exam.practice:
            return 0  # a sample attempt sends none
        return sum(1 for s in self.path if sends_email(Status(s)))


@dataclass
class Run:
    """One demo run: its course, exams, seats and what came back."""

    tag: str
    learners: int
    provider: str | None
    exam_ids: dict[str, int] = field(default_factory=dict)
    seats: list[Seat] = field(default_factory=list)
    transitions: dict[int, str] = field(default_factory=dict)  # id -> state
    credit: dict[int, dict[str, str]] = field(default_factory=dict)  # learner -> key -> status

    @property
    def course_id(self) -> str:
        return f"course-v1:proctorq+Demo{self.tag}+2026"

    def content_id(self, exam: ExamSpec) -> str:
        return f"block-v1:proctorq+Demo{self.tag}+type@sequential+block@{exam.key}"

    def complete(self) -> bool:
        return (
            all(state in FINAL_STATES and state != "failed" for state in self.transitions.values())
            and all(seat.status == seat.expected for seat in self.seats)
            and all(
                self.credit.get(seat.learner, {}).get(seat.exam.key) == seat.expected_credit
                for seat in self.seats
                if seat.expected_credit is not None
            )
        )


def learner_id(number: int) -> int:
    return FIRST_LEARNER_ID + number


def username(number: int) -> str:
    return f"demo-learner-{number + 1}"


def review_kinds(config: ProviderConfig) -> tuple[Review, Review, Review]:
    """A passing review, a failing one nobody looked at, a failing one a human confirmed."""
    passing = [w for w, ours in config.review_statuses.items() if ours in config.passing]
    failing = [
        w
        for w, ours in config.review_statuses.items()
        if ours not in config.passing and ours != "not_reviewed"
    ]
    if not passing or not failing:
        raise DemoError("the provider's vocabulary needs a passing and a failing word")
    unconfirmed = "second_review_required" if config.require_second_review else "rejected"
    return (
        Review(passing[0], None, Status.verified.value),
        Review(failing[0], None, unconfirmed),
        Review(failing[0], "Demo Reviewer", Status.rejected.value),
    )


def plan(learners: int, reviews: tuple[Review, ...] | None) -> list[Seat]:
    midterm, final, lab, practice = EXAMS
    seats: list[Seat] = []
    for number in range(learners):
        review = reviews[number % len(reviews)] if reviews else None
        seats.append(Seat(number, midterm, ("started", "submitted"), review))
        seats.append(Seat(number, practice, ("started", "submitted")))
        if number == 0:  # the one decline the learner sends; the lab exam follows by cascade
            seats += [Seat(number, final, declines=True), Seat(number, lab, cascaded=True)]
        elif review is not None and review.outcome == Status.rejected:
            seats += [Seat(number, final, cascaded=True), Seat(number, lab, cascaded=True)]
    return seats
