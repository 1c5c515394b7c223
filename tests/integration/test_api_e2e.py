"""End to end: the API under uvicorn, a real worker, Redis, PostgreSQL, SMTP and the LMS."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.api import new_id
from tests.support.processes import Stack, wait_until
from tests.support.servers import HTTPEndpoint, SMTPServer
from tests.support.tokens import bearer, signed


class LMS:
    """What an LMS integrator does: users, a course, an exam, attempts, transitions."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=40)
        self.admin = bearer(new_id(), staff=True)
        self.course = f"course-v1:proctorq+E2E{new_id()}+2026"
        self.ok(
            self.http.put(
                f"/v1/courses/{self.course}", json={"name": "End to End"}, headers=self.admin
            )
        )
        self.exam = self.ok(
            self.http.post(
                "/v1/exams",
                headers=self.admin,
                json={
                    "course_id": self.course,
                    "content_id": "block-v1:final",
                    "exam_name": "Final",
                    "time_limit_mins": 60,
                },
            )
        )["exam_id"]

    @staticmethod
    def ok(response: httpx.Response) -> Any:
        assert response.status_code < 300, response.text
        return response.json()

    def learner(self) -> tuple[int, dict[str, Any]]:
        user = new_id()
        # The LMS knows the learner and gives the vendor's session id, which a learner may not.
        self.ok(
            self.http.put(
                f"/v1/users/{user}",
                json={"username": f"e2e{user}", "email": f"e2e{user}@example.test"},
                headers=self.admin,
            )
        )
        attempt = self.ok(
            self.http.post(
                f"/v1/exams/{self.exam}/attempts",
                json={"user_id": user, "external_id": f"session-{user}"},
                headers=self.admin,
            )
        )
        return user, attempt

    def move(self, user: int, attempt: dict[str, Any], to: str) -> dict[str, Any]:
        posted = self.ok(
            self.http.post(
                f"/v1/attempts/{attempt['attempt_id']}/transitions",
                json={"to_status": to},
                headers={**bearer(user), "Idempotency-Key": f"{to}-{attempt['attempt_id']}"},
            )
        )
        return self.ok(
            self.http.get(
                f"/v1/transitions/{posted['transition_id']}",
                params={"wait": 20},
                headers=bearer(user),
            )
        )

    def review(self, attempt: dict[str, Any], word: str) -> dict[str, Any]:
        raw, headers = signed("acme", {"attempt_code": attempt["attempt_code"], "status": word})
        return self.ok(self.http.post("/v1/providers/acme/reviews", content=raw, headers=headers))

    def status(self, user: int, attempt: dict[str, Any]) -> str:
        return str(
            self.ok(self.http.get(f"/v1/attempts/{attempt['attempt_id']}", headers=bearer(user)))[
                "status"
            ]
        )


@pytest.fixture
def lms_client(pipeline: Stack) -> LMS:
    pipeline.start_worker()
    _, url = pipeline.start_api()
    return LMS(url)


def test_start_and_submit_with_wait(lms_client: LMS, smtp: SMTPServer) -> None:
    user, attempt = lms_client.learner()
    started = lms_client.move(user, attempt, "started")
    assert (started["state"], started["result_status"]) == ("applied", "started")
    submitted = lms_client.move(user, attempt, "submitted")
    assert (submitted["state"], submitted["from_status"]) == ("applied", "started")
    wait_until(lambda: len(smtp.messages) == 1, what="the submitted e-mail")
    assert smtp.messages[0]["To"] == f"user{user}@example.test"


def test_a_vendor_review_verifies_with_credit_and_email(
    lms_client: LMS, smtp: SMTPServer, lms: HTTPEndpoint
) -> None:
    user, attempt = lms_client.learner()
    lms_client.move(user, attempt, "started")
    lms_client.move(user, attempt, "submitted")
    answer = lms_client.review(attempt, "passed")
    assert (answer["outcome"], answer["state"]) == ("verified", "applied")
    wait_until(lambda: lms_client.status(user, attempt) == "verified", what="verified")
    wait_until(lambda: len(smtp.messages) == 2, what="two e-mails")
    assert any(
        "all proctoring requirements were met" in m.get_body(("plain",)).get_content()
        for m in smtp.messages
    )
    credit = lambda: lms_client.ok(  # noqa: E731
        lms_client.http.get(f"/v1/users/{user}/credit", headers=bearer(user))
    )
    wait_until(lambda: credit() and credit()[0]["status"] == "satisfied", what="credit")
    # Two credit tasks may run at once: the LMS orders the changes by their transition_id.
    wait_until(
        lambda: sorted(p.body["status"] for p in lms.received) == ["satisfied", "submitted"],
        what="the LMS to hear both credit changes",
    )
    by_status = {p.body["status"]: p.body["transition_id"] for p in lms.received}
    assert by_status["submitted"] < by_status["satisfied"]


def test_a_review_before_submit_is_held_then_applied(lms_client: LMS, smtp: SMTPServer) -> None:
    user, attempt = lms_client.learner()
    lms_client.move(user, attempt, "started")
    held = lms_client.review(attempt, "violation")
    assert (held["state"], held["outcome"]) == ("held", "second_review_required")
    assert lms_client.status(user, attempt) == "started"
    lms_client.move(user, attempt, "submitted")
    wait_until(
        lambda: lms_client.status(user, attempt) == "second_review_required", what="the held review"
    )
    history = lms_client.ok(
        lms_client.http.get(
            f"/v1/attempts/{attempt['attempt_id']}/transitions", headers=bearer(user)
        )
    )
    assert [(t["source"], t["result_status"]) for t in history] == [
        ("learner", "started"),
        ("learner", "submitted"),
        ("vendor", "second_review_required"),
    ]
