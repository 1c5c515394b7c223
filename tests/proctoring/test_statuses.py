"""Every row of SPEC §2's status table, written out again here as the spec prints it."""

from __future__ import annotations

import pytest

from proctoring import statuses
from proctoring.statuses import Status

# status: (completed, in progress, pre-start, credit value, cascades declines, e-mail)
SPEC_TABLE = {
    "created": (False, False, True, None, False, False),
    "download_software_clicked": (False, False, True, None, False, False),
    "ready_to_start": (False, False, True, None, False, False),
    "started": (False, True, False, None, False, False),
    "ready_to_submit": (False, True, False, None, False, False),
    "declined": (True, False, False, "failed", True, False),
    "timed_out": (True, False, False, None, False, False),
    "submitted": (True, False, False, "submitted", False, True),
    "second_review_required": (True, False, False, None, False, False),
    "verified": (True, False, False, "satisfied", False, True),
    "rejected": (True, False, False, "failed", True, True),
    "error": (True, False, False, "failed", False, False),
}


def test_the_table_names_every_status_once() -> None:
    assert set(SPEC_TABLE) == {s.value for s in Status}
    assert set(statuses.TABLE) == set(Status)


@pytest.mark.parametrize("name", sorted(SPEC_TABLE))
def test_status_row(name: str) -> None:
    status = Status(name)
    completed, in_progress, pre_start, credit, cascades, email = SPEC_TABLE[name]
    assert statuses.is_completed(status) is completed
    assert statuses.is_in_progress(status) is in_progress
    assert statuses.is_pre_start(status) is pre_start
    assert statuses.is_incomplete(status) is (pre_start or in_progress)
    assert statuses.credit_value(status) == credit
    assert statuses.cascades_declines(status) is cascades
    assert statuses.sends_email(status) is email


def test_reviewed_statuses() -> None:
    reviewed = {s.value for s in Status if statuses.is_reviewed(s)}
    assert reviewed == {"second_review_required", "verified", "rejected"}


@pytest.mark.parametrize(
    ("source", "targets"),
    [
        (
            "learner",
            {
                "download_software_clicked",
                "ready_to_start",
                "started",
                "ready_to_submit",
                "submitted",
                "declined",
                "timed_out",
                "error",
            },
        ),
        ("staff", set(SPEC_TABLE)),
        ("vendor", {"ready_to_start", "second_review_required", "verified", "rejected", "error"}),
        ("system", {"timed_out"}),
        ("cascade", {"declined"}),
    ],
)
def test_who_may_set_what(source: str, targets: set[str]) -> None:
    allowed = {s.value for s in Status if statuses.may_set(statuses.Source(source), s)}
    assert allowed == targets
