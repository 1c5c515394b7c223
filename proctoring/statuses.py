"""The status table (docs/behaviour.md, "Statuses"), as data, and the classifications read
from it."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Status(enum.StrEnum):
    created = "created"
    download_software_clicked = "download_software_clicked"
    ready_to_start = "ready_to_start"
    started = "started"
    ready_to_submit = "ready_to_submit"
    declined = "declined"
    timed_out = "timed_out"
    submitted = "submitted"
    second_review_required = "second_review_required"
    verified = "verified"
    rejected = "rejected"
    error = "error"


class CreditStatus(enum.StrEnum):
    submitted = "submitted"
    satisfied = "satisfied"
    failed = "failed"


class Source(enum.StrEnum):
    learner = "learner"
    staff = "staff"
    vendor = "vendor"
    system = "system"
    cascade = "cascade"


class Phase(enum.Enum):
    pre_start = "pre-start"
    in_progress = "in progress"
    completed = "completed"


@dataclass(frozen=True)
class Row:
    phase: Phase
    credit: CreditStatus | None = None
    cascades_declines: bool = False
    email: bool = False


_S, _C = Status, CreditStatus

TABLE: dict[Status, Row] = {
    _S.created: Row(Phase.pre_start),
    _S.download_software_clicked: Row(Phase.pre_start),
    _S.ready_to_start: Row(Phase.pre_start),
    _S.started: Row(Phase.in_progress),
    _S.ready_to_submit: Row(Phase.in_progress),
    _S.declined: Row(Phase.completed, credit=_C.failed, cascades_declines=True),
    _S.timed_out: Row(Phase.completed),
    _S.submitted: Row(Phase.completed, credit=_C.submitted, email=True),
    _S.second_review_required: Row(Phase.completed),
    _S.verified: Row(Phase.completed, credit=_C.satisfied, email=True),
    _S.rejected: Row(Phase.completed, credit=_C.failed, cascades_declines=True, email=True),
    _S.error: Row(Phase.completed, credit=_C.failed),
}

REVIEWED: frozenset[Status] = frozenset({_S.second_review_required, _S.verified, _S.rejected})

# The targets each source may set (docs/behaviour.md, "Who may set what").
TARGETS_BY_SOURCE: dict[Source, frozenset[Status]] = {
    Source.learner: frozenset(
        {
            _S.download_software_clicked,
            _S.ready_to_start,
            _S.started,
            _S.ready_to_submit,
            _S.submitted,
            _S.declined,
            _S.timed_out,
            _S.error,
        }
    ),
    Source.staff: frozenset(Status),
    Source.vendor: frozenset({_S.ready_to_start, *REVIEWED, _S.error}),
    Source.system: frozenset({_S.timed_out}),
    Source.cascade: frozenset({_S.declined}),
}

# A vendor's "ready" only moves an attempt that has not got further than these.
VENDOR_READY_FROM: frozenset[Status] = frozenset({_S.created, _S.download_software_clicked})


def is_completed(status: Status) -> bool:
    return TABLE[status].phase is Phase.completed


def is_in_progress(status: Status) -> bool:
    return TABLE[status].phase is Phase.in_progress


def is_pre_start(status: Status) -> bool:
    return TABLE[status].phase is Phase.pre_start


def is_incomplete(status: Status) -> bool:
    return not is_completed(status)


def is_reviewed(status: Status) -> bool:
    return status in REVIEWED


def credit_value(status: Status) -> CreditStatus | None:
    return TABLE[status].credit


def cascades_declines(status: Status) -> bool:
    return TABLE[status].cascades_declines


def sends_email(status: Status) -> bool:
    return TABLE[status].email


def may_set(source: Source, target: Status) -> bool:
    return target in TARGETS_BY_SOURCE[source]


def in_words(status: Status) -> str:
    """The status as a learner reads it in an e-mail."""
    return _WORDS.get(status, status.value.replace("_", " "))


_WORDS: dict[Status, str] = {
    _S.submitted: "submitted",
    _S.verified: "verified",
    _S.rejected: "rejected",
    _S.second_review_required: "awaiting a second review",
    _S.timed_out: "timed out",
}
