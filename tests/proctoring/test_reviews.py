"""SPEC §5: vendor reviews, stored always, mapped with the provider's words, applied or held."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config import get_settings
from proctoring import apply, reviews
from proctoring.attempts import archive_attempt, find_attempt_for_vendor
from proctoring.errors import Conflict, Invalid, NotFound
from proctoring.models import Attempt, Outbox, Review, ReviewState, Transition, TransitionState
from proctoring.statuses import Status
from tests.support import factories as f

_hooks = itertools.count(1)


def review(session: Session, attempt: Attempt, word: str, **kw: object) -> reviews.ReviewReceipt:
    exam_provider = kw.pop("provider", None) or "acme"
    return reviews.record_review(
        session,
        provider=str(exam_provider),
        webhook_id=str(kw.pop("webhook_id", f"msg_{next(_hooks)}")),
        status=word,
        attempt_code=attempt.attempt_code,
        **kw,  # type: ignore[arg-type]
    )


def ready(session: Session, external_id: str, webhook_id: str) -> reviews.ReadyReceipt:
    receipt = reviews.record_vendor_ready(
        session, provider="acme", external_id=external_id, webhook_id=webhook_id
    )
    assert isinstance(receipt, reviews.ReadyReceipt)
    return receipt


def submitted(session: Session, provider: str = "acme", **kw: object) -> Attempt:
    attempt = f.attempt(session, f.exam(session, provider=provider), **kw)  # type: ignore[arg-type]
    f.move(session, attempt, "started", "learner")
    f.move(session, attempt, "submitted", "learner")
    return attempt


@pytest.mark.parametrize(
    ("provider", "word", "reviewed_by", "outcome"),
    [
        ("acme", "passed", None, "verified"),
        ("acme", "not_reviewed", None, "error"),
        ("acme", "violation", None, "second_review_required"),
        ("acme", "suspicious", None, "second_review_required"),
        ("acme", "violation", "proctor@vendor", "rejected"),
        ("acme", "suspicious", "Jo Proctor", "rejected"),
        ("strict", "violation", None, "rejected"),
        ("strict", "suspicious", None, "rejected"),
        ("strict", "passed", None, "verified"),
        ("cleanview", "Clean", None, "verified"),
        ("cleanview", "Rules Violation", None, "second_review_required"),
        ("cleanview", "Rules Violation", "Jo", "rejected"),
        ("cleanview", "Suspicious", None, "second_review_required"),
        ("cleanview", "Not Reviewed", None, "error"),
    ],
)
def test_mapping_a_review_to_an_outcome(
    provider: str, word: str, reviewed_by: str | None, outcome: str
) -> None:
    config = get_settings().providers[provider]
    assert reviews.review_outcome(config, word, reviewed_by) is Status(outcome)


def test_a_configured_passing_word_can_be_another_of_ours() -> None:
    config = (
        get_settings().providers["acme"].model_copy(update={"passing": ("passed", "suspicious")})
    )
    assert reviews.review_outcome(config, "suspicious", None) is Status.verified


@pytest.mark.parametrize(("provider", "word"), [("acme", "Clean"), ("cleanview", "clean")])
def test_a_word_outside_the_vocabulary_names_the_accepted_words(provider: str, word: str) -> None:
    config = get_settings().providers[provider]
    with pytest.raises(Invalid) as error:
        reviews.review_outcome(config, word, None)
    for accepted in config.review_statuses:
        assert repr(accepted) in error.value.detail


def test_a_review_of_a_submitted_attempt_is_applied(session: Session) -> None:
    attempt = submitted(session)
    receipt = review(session, attempt, "passed")
    assert receipt.review.state is ReviewState.applied
    assert receipt.new
    assert receipt.transition is not None
    apply.apply_transitions(session, [receipt.transition.id])
    assert receipt.transition.state is TransitionState.applied
    assert attempt.status is Status.verified


def test_a_repeated_delivery_changes_nothing(session: Session) -> None:
    attempt = submitted(session)
    first = review(session, attempt, "passed", webhook_id="msg_same")
    again = review(session, attempt, "violation", webhook_id="msg_same")
    assert again.review.id == first.review.id
    assert not again.new
    assert again.transition is not None
    assert first.transition is not None
    assert again.transition.id == first.transition.id
    assert session.scalar(select(func.count()).select_from(Review)) == 1


def test_the_same_webhook_id_from_two_providers_is_two_reviews(session: Session) -> None:
    one = review(session, submitted(session, "acme"), "passed", webhook_id="msg_x")
    two = review(
        session, submitted(session, "strict"), "passed", webhook_id="msg_x", provider="strict"
    )
    assert one.review.id != two.review.id


def test_a_review_before_submit_is_held_and_applied_right_after_it(session: Session) -> None:
    attempt = f.attempt(session)
    f.move(session, attempt, "started", "learner")
    receipt = review(session, attempt, "passed")
    assert receipt.review.state is ReviewState.held
    assert receipt.transition is None
    assert attempt.status is Status.started  # held: nothing applied yet
    f.move(session, attempt, "submitted", "learner")
    session.refresh(receipt.review)
    assert receipt.review.state is ReviewState.applied
    review_transition = session.get_one(Transition, receipt.review.transition_id)
    assert (review_transition.from_status, review_transition.result_status) == (
        Status.submitted,
        Status.verified,
    )
    assert attempt.status is Status.verified


def test_a_held_review_follows_the_submit_immediately(session: Session) -> None:
    attempt = f.attempt(session)
    f.move(session, attempt, "started", "learner")
    receipt = review(session, attempt, "violation", reviewed_by="Jo")
    submit = f.request(session, attempt, "submitted", "learner")
    after = f.request(session, attempt, "verified", "staff")
    apply.apply_transitions(session, [submit.id])
    session.flush()
    session.refresh(receipt.review)
    held = session.get_one(Transition, receipt.review.transition_id)
    assert submit.id < after.id < held.id
    assert held.applied_at is not None
    assert after.applied_at is not None
    assert held.applied_at <= after.applied_at
    assert held.result_status is Status.rejected
    assert after.from_status is Status.rejected
    assert attempt.status is Status.verified


@pytest.mark.parametrize("setup", ["declined", "not_proctored"])
def test_a_review_that_cannot_apply_is_stored(session: Session, setup: str) -> None:
    attempt = f.attempt(session, taking_as_proctored=setup != "not_proctored")
    f.move(session, attempt, "started", "learner")
    if setup == "declined":
        f.move(session, attempt, "declined", "learner")
    else:
        f.move(session, attempt, "submitted", "learner")
    receipt = review(session, attempt, "passed")
    assert receipt.review.state is ReviewState.stored
    assert receipt.transition is None


def test_a_review_of_an_archived_attempt_is_stored(session: Session) -> None:
    attempt = submitted(session)
    archive_attempt(session, attempt.id)
    receipt = review(session, attempt, "passed")
    assert receipt.review.state is ReviewState.stored


def test_a_review_by_external_id(session: Session) -> None:
    attempt = submitted(session, external_id="vendor-session-9")
    receipt = reviews.record_review(
        session,
        provider="acme",
        webhook_id="msg_ext",
        status="passed",
        external_id="vendor-session-9",
    )
    assert receipt.review.attempt_id == attempt.id


def test_another_vendors_attempt_is_not_found(session: Session) -> None:
    attempt = submitted(session, "acme")
    with pytest.raises(NotFound):
        review(session, attempt, "passed", provider="strict")


def test_an_unknown_attempt_code_is_not_found(session: Session) -> None:
    with pytest.raises(NotFound):
        reviews.record_review(
            session, provider="acme", webhook_id="m", status="passed", attempt_code="nope"
        )


def test_an_unknown_word_stores_nothing(session: Session) -> None:
    attempt = submitted(session)
    with pytest.raises(Invalid):
        review(session, attempt, "Clean")
    assert session.scalar(select(func.count()).select_from(Review)) == 0


def test_vendor_ready_by_external_id(session: Session) -> None:
    attempt = f.attempt(session, external_id="vendor-ready-1")
    first = ready(session, "vendor-ready-1", "msg_r")
    again = ready(session, "vendor-ready-1", "msg_r")
    assert first.new
    assert not again.new
    assert again.transition.id == first.transition.id
    apply.apply_transitions(session, [first.transition.id])
    assert attempt.status is Status.ready_to_start


def test_a_review_applied_after_a_decline_received_first_is_stored(session: Session) -> None:
    attempt = submitted(session)
    decline = f.request(session, attempt, "declined", "learner")  # received, not yet applied
    receipt = review(session, attempt, "passed")  # sees "submitted": recorded to apply
    assert receipt.transition is not None
    apply.apply_transitions(session, [decline.id, receipt.transition.id])
    session.flush()
    session.refresh(receipt.review)
    assert attempt.status is Status.declined
    assert receipt.transition.state is TransitionState.noop
    assert receipt.review.state is ReviewState.stored


def test_a_repeat_of_a_held_review_gets_the_first_answer(session: Session) -> None:
    attempt = f.attempt(session)
    f.move(session, attempt, "started", "learner")
    first = review(session, attempt, "passed", webhook_id="msg_held_then_applied")
    f.move(session, attempt, "submitted", "learner")  # releases it
    again = review(session, attempt, "passed", webhook_id="msg_held_then_applied")
    assert again.review.state is ReviewState.applied  # as it is now
    assert (again.state, again.transition_id) == (first.state, first.transition_id)
    assert (again.state, again.transition_id) == (ReviewState.held, None)


# --- one webhook id, one message ----------------------------------------------------------------


def _count(session: Session, model: type[object]) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_a_review_with_a_ready_notices_id_gets_the_notices_answer(session: Session) -> None:
    attempt = f.attempt(session, external_id="sess-ready-then-review")
    notice = ready(session, "sess-ready-then-review", "msg_shared")
    f.move(session, attempt, "started", "learner")
    reviews_before, transitions_before = _count(session, Review), _count(session, Transition)
    again = review(session, attempt, "violation", webhook_id="msg_shared")
    assert isinstance(again, reviews.ReadyReceipt)
    assert (again.transition.id, again.new) == (notice.transition.id, False)
    assert (_count(session, Review), _count(session, Transition)) == (
        reviews_before,
        transitions_before,
    )
    # Nothing waits for the submit, so the submit applies and nothing collides.
    submit = f.request(session, attempt, "submitted", "learner")
    apply.apply_transitions(session, [submit.id])
    assert submit.state is TransitionState.applied
    assert attempt.status is Status.submitted


def test_a_ready_notice_with_a_held_reviews_id_gets_the_reviews_answer(session: Session) -> None:
    attempt = f.attempt(session, external_id="sess-review-then-ready")
    f.move(session, attempt, "started", "learner")
    held = review(session, attempt, "passed", webhook_id="msg_twice")
    assert held.state is ReviewState.held
    again = reviews.record_vendor_ready(
        session, provider="acme", external_id="sess-review-then-ready", webhook_id="msg_twice"
    )
    assert isinstance(again, reviews.ReviewReceipt)
    assert (again.review.id, again.state, again.new) == (held.review.id, ReviewState.held, False)
    # The held review is released at the submit without colliding with anything.
    submit = f.request(session, attempt, "submitted", "learner")
    done = apply.apply_transitions(session, [submit.id])
    assert [t.state for t in done] == [TransitionState.applied, TransitionState.applied]
    assert attempt.status is Status.verified


def test_a_held_review_repeated_with_another_body_changes_nothing(session: Session) -> None:
    attempt = f.attempt(session)
    f.move(session, attempt, "started", "learner")
    first = review(session, attempt, "passed", webhook_id="msg_other_body")
    again = review(session, attempt, "violation", webhook_id="msg_other_body", reviewed_by="Jo")
    assert isinstance(again, reviews.ReviewReceipt)
    assert (again.review.id, again.review.outcome) == (first.review.id, Status.verified)
    f.move(session, attempt, "submitted", "learner")
    assert attempt.status is Status.verified


@pytest.mark.parametrize("length", [200, 250, 251, 255])
def test_a_webhook_id_of_any_accepted_length_fits(session: Session, length: int) -> None:
    held_attempt = f.attempt(session)
    f.move(session, held_attempt, "started", "learner")
    held = review(session, held_attempt, "passed", webhook_id="h" * length)
    applied = review(session, submitted(session), "passed", webhook_id="a" * length)
    notice = ready(
        session,
        f.attempt(session, external_id=f"sess-long-{length}").external_id or "",
        "r" * length,
    )
    f.move(session, held_attempt, "submitted", "learner")
    session.flush()
    keys = session.scalars(
        select(Transition.idempotency_key).where(
            Transition.id.in_(
                [held.review.transition_id, applied.transition_id, notice.transition.id]
            )
        )
    ).all()
    assert len(keys) == 3
    assert all(len(k) <= 255 for k in keys)
    assert len(set(keys)) == 3
    assert held_attempt.status is Status.verified


# --- one vendor session, one live attempt ------------------------------------------------------


def test_a_session_id_is_held_by_one_live_attempt_of_its_vendor(session: Session) -> None:
    holder = f.attempt(session, f.exam(session, provider="acme"), external_id="sess-one")
    with pytest.raises(Conflict) as taken:
        f.attempt(session, f.exam(session, provider="acme"), external_id="sess-one")
    assert "sess-one" in taken.value.detail
    # Another vendor's session may have the same name.
    f.attempt(session, f.exam(session, provider="cleanview"), external_id="sess-one")
    archive_attempt(session, holder.id)
    successor = f.attempt(session, f.exam(session, provider="acme"), external_id="sess-one")
    found = find_attempt_for_vendor(session, "acme", attempt_code=None, external_id="sess-one")
    assert found.id == successor.id


def test_the_database_keeps_a_session_to_one_live_attempt(session: Session) -> None:
    exam = f.exam(session, provider="acme")
    f.attempt(session, exam, external_id="sess-db")
    with pytest.raises(IntegrityError), session.begin_nested():
        session.add(
            Attempt(
                exam_id=exam.id,
                user_id=f.user(session).user_id,
                status=Status.created,
                attempt_code="code-sess-db",
                external_id="sess-db",
                provider="acme",
                taking_as_proctored=True,
                is_sample_attempt=False,
            )
        )


def test_an_archived_attempt_no_longer_holds_its_session(session: Session) -> None:
    attempt = submitted(session, external_id="sess-archived")
    archive_attempt(session, attempt.id)
    with pytest.raises(NotFound):
        reviews.record_review(
            session,
            provider="acme",
            webhook_id="m-arch",
            status="passed",
            external_id="sess-archived",
        )
    with pytest.raises(NotFound):
        reviews.record_vendor_ready(
            session, provider="acme", external_id="sess-archived", webhook_id="m-arch-ready"
        )


def test_an_attempt_at_a_timed_exam_is_never_taken_as_proctored(session: Session) -> None:
    attempt = f.attempt(session, f.exam(session, is_proctored=False), taking_as_proctored=True)
    assert attempt.taking_as_proctored is False
    f.move(session, attempt, "started", "learner")
    submit = f.move(session, attempt, "submitted", "learner")
    assert "email" not in [
        o.kind.value
        for o in session.scalars(select(Outbox).where(Outbox.transition_id == submit.id))
    ]
    receipt = review(session, attempt, "violation", reviewed_by="Jo")
    assert isinstance(receipt, reviews.ReviewReceipt)
    assert receipt.review.state is ReviewState.stored
    assert attempt.status is Status.submitted
