"""The demo's calls to the running API, as the LMS, the learners and the vendor send them."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any

import httpx
from standardwebhooks import Webhook

from cli.demo.plan import (
    EXAMS,
    FINAL_STATES,
    WAIT_SECONDS,
    DemoError,
    ExamSpec,
    Run,
    Seat,
    learner_id,
    username,
)
from cli.local import sign_local_token
from config import ConfigurationError, get_settings


def make_token(user_id: int, name: str, *, staff: bool = False) -> str:
    """A token signed as `proctorq token` signs it, so the demo calls exactly as an operator."""
    try:
        return sign_local_token(
            get_settings(), user_id, username=name, email=f"{name}@example.com", staff=staff
        )
    except ConfigurationError as exc:
        raise DemoError(f"the demo cannot sign tokens: {exc}") from None


class Api:
    """The running proctorq, called with the LMS's token unless another is given."""

    def __init__(self, client: httpx.Client, lms_token: str) -> None:
        self.client = client
        self.lms_token = lms_token

    def call(
        self,
        method: str,
        path: str,
        *,
        as_token: str | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        sent = {"Authorization": f"Bearer {as_token or self.lms_token}", **(headers or {})}
        try:
            response = self.client.request(method, path, headers=sent, **kwargs)
        except httpx.HTTPError as exc:
            raise DemoError(
                f"cannot reach {self.client.base_url} ({exc}); is proctorq running?"
            ) from None
        if response.status_code >= 300:
            raise DemoError(f"{method} {path} answered {response.status_code}: {_detail(response)}")
        return response.json() if response.content else None


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    hint = ""
    if response.status_code == 401:
        hint = " (run the demo with the API's PROCTORQ_JWT_SECRET and providers)"
    return f"{detail or response.text[:200]}{hint}"


def put_user(api: Api, number: int) -> None:
    name = username(number)
    api.call(
        "PUT",
        f"/v1/users/{learner_id(number)}",
        json={"username": name, "email": f"{name}@example.com"},
    )


def put_course(api: Api, run: Run) -> None:
    api.call("PUT", f"/v1/courses/{run.course_id}", json={"name": f"proctorq demo {run.tag}"})


def create_exam(api: Api, run: Run, exam: ExamSpec) -> int:
    body: dict[str, Any] = {
        "course_id": run.course_id,
        "content_id": run.content_id(exam),
        "exam_name": exam.name,
        "time_limit_mins": 60,
        "is_practice_exam": exam.practice,
    }
    if run.provider:
        body["provider"] = run.provider
    return int(api.call("POST", "/v1/exams", json=body)["exam_id"])


def create_attempt(api: Api, run: Run, seat: Seat) -> None:
    exam_id = run.exam_ids[seat.exam.key]
    # The LMS creates it for the learner: only staff or the LMS give the vendor's session id.
    body = {
        "user_id": learner_id(seat.learner),
        "taking_as_proctored": True,
        "external_id": f"demo-{run.tag}-{seat.learner}-{exam_id}",
    }
    found = api.call("POST", f"/v1/exams/{exam_id}/attempts", json=body)
    seat.attempt_id, seat.attempt_code = int(found["attempt_id"]), str(found["attempt_code"])
    seat.status = str(found["status"])


def post_transition(api: Api, run: Run, seat: Seat, to_status: str, learner_token: str) -> int:
    answer = api.call(
        "POST",
        f"/v1/attempts/{seat.attempt_id}/transitions",
        as_token=learner_token,
        headers={"Idempotency-Key": f"demo-{run.tag}-{seat.attempt_id}-{to_status}"},
        json={"to_status": to_status},
    )
    return int(answer["transition_id"])


def post_review(api: Api, provider: str, secret: str, seat: Seat) -> int | None:
    """The vendor's verdict, signed as the Standard Webhooks specification says."""
    assert seat.review is not None
    body: dict[str, Any] = {"attempt_code": seat.attempt_code, "status": seat.review.word}
    if seat.review.reviewed_by:
        body["reviewed_by"] = seat.review.reviewed_by
    raw = json.dumps(body)
    message_id = f"msg_{uuid.uuid4().hex}"
    now = dt.datetime.now(dt.UTC)
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, raw),
        "content-type": "application/json",
    }
    answer = api.call("POST", f"/v1/providers/{provider}/reviews", content=raw, headers=headers)
    transition_id = answer.get("transition_id")
    return int(transition_id) if transition_id is not None else None


def wait_transition(api: Api, transition_id: int, deadline: float) -> str:
    """The request's state once final, or its state when the deadline passes."""
    while True:
        found = api.call("GET", f"/v1/transitions/{transition_id}", params={"wait": WAIT_SECONDS})
        state = str(found["state"])
        if state in FINAL_STATES or time.monotonic() >= deadline:
            return state


def read_status(api: Api, seat: Seat) -> str:
    return str(api.call("GET", f"/v1/attempts/{seat.attempt_id}")["status"])


def read_credit(api: Api, run: Run, number: int) -> dict[str, str]:
    rows = api.call(
        "GET", f"/v1/users/{learner_id(number)}/credit", params={"course_id": run.course_id}
    )
    by_content = {run.content_id(exam): exam.key for exam in EXAMS}
    return {by_content[r["name"]]: str(r["status"]) for r in rows if r["name"] in by_content}
