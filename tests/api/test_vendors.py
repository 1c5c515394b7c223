"""Vendor webhooks: signature first, then the provider's attempts only, replays harmless."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from proctoring import apply
from proctoring.db import UnitOfWork
from proctoring.models import Review, Transition
from tests.support.api import World
from tests.support.environment import webhook_secret
from tests.support.tokens import bearer, signed

REVIEWS = "/v1/providers/{}/reviews"


def submitted(world: World, uow: UnitOfWork, provider: str = "acme", **kw: Any) -> dict[str, Any]:
    exam = world.new_exam(provider=provider)
    attempt = world.new_attempt(exam=exam, **kw)
    url = f"/v1/attempts/{attempt['attempt_id']}/transitions"
    ids = [
        world.client.post(url, json={"to_status": s}, headers=bearer(world.learner)).json()[
            "transition_id"
        ]
        for s in ("started", "submitted")
    ]
    with uow() as session:
        apply.apply_transitions(session, ids)
    return attempt


def post(world: World, provider: str, body: Any, **kw: Any):
    raw, headers = signed(provider, body, **kw)
    return world.client.post(REVIEWS.format(provider), content=raw, headers=headers)


def test_a_review_is_applied_to_a_submitted_attempt(world: World, uow: UnitOfWork) -> None:
    attempt = submitted(world, uow)
    response = post(world, "acme", {"attempt_code": attempt["attempt_code"], "status": "passed"})
    assert response.status_code == 202, response.text
    answer = response.json()
    assert (answer["outcome"], answer["state"], answer["attempt_id"]) == (
        "verified",
        "applied",
        attempt["attempt_id"],
    )
    with uow() as session:
        transition = session.get_one(Transition, answer["transition_id"])
        assert (transition.source.value, transition.to_status.value) == ("vendor", "verified")


def test_a_vendor_speaking_its_own_words(world: World, uow: UnitOfWork) -> None:
    attempt = submitted(world, uow, "cleanview", external_id="cv-session-1")
    response = post(
        world,
        "cleanview",
        {"external_id": "cv-session-1", "status": "Rules Violation", "reviewed_by": "Jo"},
    )
    assert response.json()["outcome"] == "rejected"
    wrong = post(world, "cleanview", {"external_id": "cv-session-1", "status": "passed"})
    assert wrong.status_code == 422
    for word in ("Clean", "Rules Violation", "Suspicious", "Not Reviewed"):
        assert repr(word) in wrong.json()["detail"]
    assert attempt


def test_a_review_before_submit_is_held(world: World, uow: UnitOfWork) -> None:
    attempt = world.new_attempt(exam=world.new_exam())
    response = post(world, "acme", {"attempt_code": attempt["attempt_code"], "status": "passed"})
    assert response.json()["state"] == "held" and response.json()["transition_id"] is None


def test_a_replayed_webhook_gets_the_first_answer_and_changes_nothing(
    world: World, uow: UnitOfWork
) -> None:
    attempt = submitted(world, uow)
    body = {"attempt_code": attempt["attempt_code"], "status": "passed"}
    first = post(world, "acme", body, webhook_id="msg_replayed")
    again = post(world, "acme", {**body, "status": "violation"}, webhook_id="msg_replayed")
    assert again.status_code == 202 and again.json() == first.json()
    with uow() as session:
        reviews = session.scalar(
            select(func.count())
            .select_from(Review)
            .where(Review.attempt_id == attempt["attempt_id"])
        )
    assert reviews == 1


def test_any_of_the_providers_secrets_is_accepted(world: World, uow: UnitOfWork) -> None:
    attempt = submitted(world, uow)
    body = {"attempt_code": attempt["attempt_code"], "status": "passed"}
    assert post(world, "acme", body, secret=webhook_secret("acme-old")).status_code == 202


@pytest.mark.parametrize(
    ("tamper", "detail"),
    [
        ("secret", "The webhook signature does not match."),
        ("old", "The webhook timestamp is outside the 5-minute tolerance."),
        ("future", "The webhook timestamp is outside the 5-minute tolerance."),
        ("body", "The webhook signature does not match."),
        ("unsigned", "The webhook is not signed: missing webhook-signature."),
        ("garbage", "The webhook signature does not match."),
    ],
)
def test_bad_signatures_are_401_and_store_nothing(
    world: World, uow: UnitOfWork, tamper: str, detail: str
) -> None:
    attempt = submitted(world, uow)
    body = {"attempt_code": attempt["attempt_code"], "status": "passed"}
    now = dt.datetime.now(dt.UTC)
    raw, headers = signed(
        "acme",
        body,
        secret=webhook_secret("somebody-else") if tamper == "secret" else None,
        at=now - dt.timedelta(minutes=6)
        if tamper == "old"
        else now + dt.timedelta(minutes=6)
        if tamper == "future"
        else None,
    )
    if tamper == "body":
        raw = raw.replace(b"passed", b"violation")
    if tamper == "unsigned":
        del headers["webhook-signature"]
    if tamper == "garbage":
        headers["webhook-signature"] = "v1,garbage nonsense"
    response = world.client.post(REVIEWS.format("acme"), content=raw, headers=headers)
    assert (response.status_code, response.json()["detail"]) == (401, detail)
    with uow() as session:
        assert not session.scalars(
            select(Review).where(Review.attempt_id == attempt["attempt_id"])
        ).all()


def test_an_unknown_provider_is_404_before_any_signature(world: World) -> None:
    response = world.client.post(REVIEWS.format("nobody"), content=b"whatever")
    assert response.status_code == 404
    assert response.json()["detail"] == "provider 'nobody' is not configured"


def test_other_vendors_attempts_and_unknown_codes_are_404(world: World, uow: UnitOfWork) -> None:
    attempt = submitted(world, uow, "acme")
    theirs = post(world, "strict", {"attempt_code": attempt["attempt_code"], "status": "passed"})
    unknown = post(world, "acme", {"attempt_code": "no-such-code", "status": "passed"})
    assert (theirs.status_code, unknown.status_code) == (404, 404)


def test_a_review_must_name_its_attempt(world: World) -> None:
    response = post(world, "acme", {"status": "passed"})
    assert response.status_code == 422
    assert "attempt_code or external_id" in response.json()["detail"]


def test_vendor_ready(world: World, uow: UnitOfWork) -> None:
    world.new_attempt(external_id="ready-session-1")
    raw, headers = signed("acme", b"")
    url = "/v1/providers/acme/attempts/ready-session-1/ready"
    response = world.client.post(url, content=raw, headers=headers)
    assert response.status_code == 202, response.text
    again = world.client.post(url, content=raw, headers=headers)
    assert again.json()["transition_id"] == response.json()["transition_id"]
    with uow() as session:
        apply.apply_transitions(session, [response.json()["transition_id"]])
        row = session.get_one(Transition, response.json()["transition_id"])
        assert (row.state.value, row.result_status.value) == ("applied", "ready_to_start")  # type: ignore[union-attr]
    missing = world.client.post(
        "/v1/providers/acme/attempts/nope/ready", content=raw, headers=signed("acme", b"")[1]
    )
    assert missing.status_code == 404


def test_a_webhook_id_names_one_message_whichever_route(world: World, uow: UnitOfWork) -> None:
    attempt = world.new_attempt(exam=world.new_exam(), external_id=f"sess-{uuid.uuid4().hex}")
    one_id = f"msg_{uuid.uuid4().hex}"
    raw, headers = signed("acme", b"", webhook_id=one_id)
    url = f"/v1/providers/acme/attempts/{attempt['external_id']}/ready"
    notice = world.client.post(url, content=raw, headers=headers)
    assert notice.status_code == 202, notice.text
    review = post(
        world,
        "acme",
        {"external_id": attempt["external_id"], "status": "passed"},
        webhook_id=one_id,
    )
    assert review.status_code == 202, review.text
    assert review.json() == notice.json()
    with uow() as session:
        stored = session.scalar(
            select(func.count()).select_from(Review).where(Review.webhook_id == one_id)
        )
    assert stored == 0


@pytest.mark.parametrize("length", [251, 255])
def test_a_long_webhook_id_fits(world: World, uow: UnitOfWork, length: int) -> None:
    attempt = submitted(world, uow)
    webhook_id = ("m" * length)[:-32] + uuid.uuid4().hex
    body = {"attempt_code": attempt["attempt_code"], "status": "passed"}
    response = post(world, "acme", body, webhook_id=webhook_id)
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "applied"
    again = post(world, "acme", body, webhook_id=webhook_id)
    assert again.json() == response.json()
