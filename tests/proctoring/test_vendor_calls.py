"""Our calls to an edx-rest vendor: registration first, statuses in order, a vendor that is away
delays them and loses none, a refused registration fails what follows with its reason."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from config import get_settings
from proctoring import attempts, followups, vendor_calls
from proctoring.edx_client import Answer, Call, EdxRestClient, obscured_user_id
from proctoring.http import RetryLater
from proctoring.models import Attempt, Outbox, OutboxKind, OutboxState
from proctoring.outbox import RetryPolicy
from tests.support import factories as f


class Vendor:
    """The edge: a vendor answering each call from a script, or as a vendor would."""

    def __init__(self, script: list[Any] | None = None) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.script = script or []

    def __call__(self, call: Call) -> Answer:
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, Exception):
                raise step
            if step is not None:
                self.calls.append((call.method, call.path, call.body))
                return Answer(data=step)
        self.calls.append((call.method, call.path, call.body))
        if call.method == "POST" and call.path.endswith("/attempt/"):
            return Answer(data={"id": "session-1"})
        if call.method == "POST":
            return Answer(data={"id": "exam-1"})
        return Answer(data={})


def rows(session: Session) -> list[Outbox]:
    return list(
        session.scalars(select(Outbox).where(Outbox.kind == OutboxKind.vendor).order_by(Outbox.id))
    )


def run(session: Session, vendor: Vendor) -> Any:
    pending = [r.id for r in rows(session) if r.state is OutboxState.pending]
    # Due now: the tests do not wait out the backoff.
    for row in rows(session):
        row.next_try_at = None
    return vendor_calls.call_vendors(f.same_session(session), pending, vendor, RetryPolicy())


def learner_attempt(session: Session) -> Attempt:
    exam = f.exam(session, provider="edxvendor")
    user = f.user(session)
    return attempts.create_attempt(
        session, exam_id=exam.id, user_id=user.user_id, taking_as_proctored=True
    )


def test_registration_then_each_status_in_order(session: Session) -> None:
    attempt = learner_attempt(session)
    f.move(session, attempt, "started", "learner")
    f.move(session, attempt, "submitted", "learner")
    vendor = Vendor()
    for _ in range(4):
        run(session, vendor)
    assert [(m, p) for m, p, _ in vendor.calls] == [
        ("POST", "/api/v1/exam/"),
        ("POST", "/api/v1/exam/exam-1/attempt/"),
        ("PATCH", "/api/v1/exam/exam-1/attempt/session-1/"),
        ("PATCH", "/api/v1/exam/exam-1/attempt/session-1/"),
    ]
    assert [body for _, _, body in vendor.calls[2:]] == [
        {"status": "started"},
        {"status": "submitted"},
    ]
    registration = vendor.calls[1][2]
    key = get_settings().user_obfuscation_key
    assert key is not None
    assert registration["user_id"] == obscured_user_id(
        attempt.user_id, "edxvendor", key.get_secret_value()
    )
    assert registration["status"] == "created" and "id" not in registration
    session.refresh(attempt)
    assert attempt.external_id == "session-1"
    assert all(r.state is OutboxState.done for r in rows(session))


def test_a_vendor_away_delays_the_calls_in_order_and_loses_none(session: Session) -> None:
    attempt = learner_attempt(session)
    f.move(session, attempt, "started", "learner")
    vendor = Vendor([RetryLater("vendor edxvendor unreachable: ConnectError")])
    result = run(session, vendor)
    # The exam's registration waits for the vendor; nothing behind it overtook it.
    assert vendor.calls == [] and len(result.retry_ids) == 1
    assert all(r.state is OutboxState.pending for r in rows(session))
    assert attempt.status.value == "started"  # the learner never waited
    for _ in range(4):
        run(session, vendor)
    assert [m for m, _, _ in vendor.calls] == ["POST", "POST", "PATCH"]
    assert all(r.state is OutboxState.done for r in rows(session))


@pytest.mark.parametrize(
    ("answer", "word"),
    [({"id": "s-2", "status": "onboarding_missing"}, "onboarding_missing"), ({}, "no id")],
)
def test_a_refused_registration_fails_what_follows(
    session: Session, answer: dict[str, Any], word: str
) -> None:
    attempt = learner_attempt(session)
    f.move(session, attempt, "started", "learner")
    vendor = Vendor([{"id": "exam-9"}, answer])
    for _ in range(3):
        run(session, vendor)
    registration, status = [r for r in rows(session) if r.attempt_id == attempt.id]
    assert registration.state is OutboxState.failed and word in (registration.detail or "")
    assert status.state is OutboxState.failed
    assert "registration failed" in (status.detail or "") and word in (status.detail or "")
    session.refresh(attempt)
    assert attempt.external_id is None


def test_the_client_keeps_its_token_and_fetches_one_again_on_a_401() -> None:
    seen: list[tuple[str, str | None]] = []
    refusals = [401]

    def vendor(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, request.headers.get("authorization")))
        if request.url.path == "/edxvendor/oauth2/access_token":
            n = sum(1 for p, _ in seen if p.endswith("access_token"))
            return httpx.Response(200, json={"access_token": f"t{n}", "expires_in": 3600})
        if refusals and len(seen) > 3:
            return httpx.Response(refusals.pop())
        return httpx.Response(200, json={"id": "x"})

    client = EdxRestClient(
        get_settings().providers, client=httpx.Client(transport=httpx.MockTransport(vendor))
    )
    call = Call("edxvendor", "PATCH", "/api/v1/exam/e/attempt/a/", {"status": "started"})
    assert client(call).refused is None
    assert client(call).refused is None  # the same token
    assert client(call).refused is None  # a 401, a fresh token, the call again
    assert [a for p, a in seen if not p.endswith("access_token")] == [
        "JWT t1",
        "JWT t1",
        "JWT t1",
        "JWT t2",
    ]


def test_a_second_401_is_final() -> None:
    def vendor(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("access_token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        return httpx.Response(401)

    client = EdxRestClient(
        get_settings().providers, client=httpx.Client(transport=httpx.MockTransport(vendor))
    )
    answer = client(Call("edxvendor", "DELETE", "/api/v1/exam/e/attempt/a/"))
    assert answer.refused is not None and "401" in answer.refused


class Sessions(Vendor):
    """A vendor giving each attempt's registration a session id of its own."""

    def __call__(self, call: Call) -> Answer:
        self.calls.append((call.method, call.path, call.body))
        if call.method == "POST" and call.path.endswith("/attempt/"):
            return Answer(data={"id": f"session-{len(self.calls)}"})
        if call.method == "POST":
            return Answer(data={"id": f"exam-{len(self.calls)}"})
        return Answer(data={})


def test_two_registrations_on_an_unregistered_exam_register_it_once(session: Session) -> None:
    """An exam never registered on its own (its row gone) is registered by the first of its
    attempts' registrations; the second waits, and is read as an attempt's, not an exam's."""
    first = learner_attempt(session)
    exam = f.exams.get_exam(session, first.exam_id)
    for row in rows(session):
        if row.attempt_id is None:
            session.delete(row)
    second = attempts.create_attempt(
        session, exam_id=exam.id, user_id=f.user(session).user_id, taking_as_proctored=True
    )
    # Two workers at once: the first registers the exam; the second waits for it.
    one, two = [r.id for r in rows(session)]
    leased = followups.FollowUpResult()
    call = vendor_calls._lease(session, one, 10.0, leased)
    assert call is not None and call.path == "/api/v1/exam/"
    assert vendor_calls._lease(session, two, 10.0, leased) is None
    vendor = Sessions()
    for _ in range(4):
        run(session, vendor)
    assert [(m, p) for m, p, _ in vendor.calls] == [
        ("POST", "/api/v1/exam/"),
        ("POST", "/api/v1/exam/exam-1/attempt/"),
        ("POST", "/api/v1/exam/exam-1/attempt/"),
    ]
    session.refresh(first)
    session.refresh(second)
    assert {first.external_id, second.external_id} == {"session-2", "session-3"}
    assert all(r.state is OutboxState.done for r in rows(session))


def test_a_status_call_for_an_exam_the_vendor_never_registered_fails_with_why(
    session: Session,
) -> None:
    exam = f.exam(session, provider="edxvendor")
    run(session, Vendor([{"status": "no"}]))  # the exam's registration: no id
    attempt = attempts.create_attempt(
        session,
        exam_id=exam.id,
        user_id=f.user(session).user_id,
        taking_as_proctored=True,
        external_id="given-by-staff",
    )
    f.move(session, attempt, "started", "learner")
    vendor = Vendor()
    run(session, vendor)
    assert vendor.calls == []
    (status_row,) = [r for r in rows(session) if r.attempt_id == attempt.id]
    assert status_row.state is OutboxState.failed
    assert status_row.detail is not None and "not registered" in status_row.detail


def test_a_vendor_away_is_not_called_again_in_the_same_batch(session: Session) -> None:
    f.exam(session, provider="edxvendor")
    f.exam(session, provider="edxvendor")
    vendor = Vendor([RetryLater("vendor edxvendor unreachable: ConnectTimeout")])
    result = run(session, vendor)
    assert vendor.calls == [] and vendor.script == []  # one call tried, the second spared
    assert len(result.retry_ids) == 2
    assert all(r.state is OutboxState.pending for r in rows(session))
