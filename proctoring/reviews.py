"""Vendor reviews (docs/behaviour.md, "Vendor reviews"): store every one, map it to an
outcome, apply, hold or keep it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config import ProviderConfig
from config.settings import ReviewWord
from proctoring import events, statuses
from proctoring.attempts import find_attempt_for_vendor
from proctoring.clock import utcnow
from proctoring.errors import Invalid
from proctoring.models import Review, ReviewState, Transition, VendorMessage
from proctoring.providers import require_provider
from proctoring.statuses import Source, Status
from proctoring.transitions import (
    find_by_key,
    lock_attempt_for_request,
    record_transition,
    review_key,
)


def review_outcome(
    config: ProviderConfig,
    word: str,
    reviewed_by: str | None,
    vocabulary: Mapping[str, ReviewWord] | None = None,
) -> Status:
    """Map a vendor's word to our status, with the provider's vocabulary (or the one given:
    edx-proctoring's protocol has the four standard words)."""
    words = config.review_statuses if vocabulary is None else vocabulary
    ours = words.get(word)
    if ours is None:
        accepted = ", ".join(repr(w) for w in words)
        raise Invalid(f"review status {word!r} is not one of the provider's words: {accepted}")
    if ours in config.passing:
        return Status.verified
    if ours == "not_reviewed":
        return Status.error
    if reviewed_by or not config.require_second_review:
        return Status.rejected
    return Status.second_review_required


@dataclass(frozen=True)
class ReviewReceipt:
    review: Review
    transition: Transition | None
    new: bool

    @property
    def state(self) -> ReviewState:
        """As first answered: a held review applied since is still "held" to a repeat."""
        return self.review.answered_state

    @property
    def transition_id(self) -> int | None:
        return self.review.transition_id if self.state is ReviewState.applied else None


@dataclass(frozen=True)
class ReadyReceipt:
    """A vendor's "ready" notice: the request it recorded."""

    transition: Transition
    new: bool


# What a vendor is answered: a webhook id names one message, whichever kind it was, and a
# second message with that id gets the first one's answer.
VendorReceipt = ReviewReceipt | ReadyReceipt


def record_review(
    session: Session,
    *,
    provider: str,
    webhook_id: str,
    status: str,
    attempt_code: str | None = None,
    external_id: str | None = None,
    reviewed_by: str | None = None,
    comments: str = "",
    vocabulary: Mapping[str, ReviewWord] | None = None,
    human: bool | None = None,
) -> VendorReceipt:
    """Store a review once per (provider, webhook id). An id already used, by a review or by a
    ready notice, returns that message's first receipt and changes nothing.

    ``human`` says whether a person reviewed it; by default, whoever ``reviewed_by`` names."""
    config = require_provider(provider)
    seen = first_answer(session, provider, webhook_id)
    if seen is not None:
        return seen
    reviewer = reviewed_by if human is None else ("human" if human else None)
    outcome = review_outcome(config, status, reviewer, vocabulary)
    attempt = find_attempt_for_vendor(
        session, provider, attempt_code=attempt_code, external_id=external_id
    )
    raced = _claim(session, provider, webhook_id)
    if raced is not None:
        return raced
    transition: Transition | None = None
    if attempt.archived_at is not None:
        state = ReviewState.stored
    else:
        attempt = lock_attempt_for_request(session, attempt.id)
        if attempt.status is Status.declined or not attempt.taking_as_proctored:
            state = ReviewState.stored
        elif statuses.is_incomplete(attempt.status):
            state = ReviewState.held
        else:
            state = ReviewState.applied
            transition, _ = _vendor_request(session, attempt.id, outcome, provider, webhook_id)
    review = Review(
        attempt_id=attempt.id,
        provider=provider,
        webhook_id=webhook_id,
        review_status=status,
        outcome=outcome,
        reviewed_by=reviewed_by,
        comments=comments,
        received_at=utcnow(),
        state=state,
        answered_state=state,
        transition_id=transition.id if transition else None,
    )
    session.add(review)
    session.flush()
    events.insert(session, events.review_received(review))
    return ReviewReceipt(review, transition, new=True)


def first_answer(session: Session, provider: str, webhook_id: str) -> VendorReceipt | None:
    """The receipt of the message this webhook id already names, if any."""
    review = session.scalar(
        select(Review).where(Review.provider == provider, Review.webhook_id == webhook_id)
    )
    if review is not None:
        transition = session.get(Transition, review.transition_id) if review.transition_id else None
        return ReviewReceipt(review, transition, new=False)
    ready = find_by_key(session, Source.vendor, review_key(provider, webhook_id))
    if ready is not None:
        return ReadyReceipt(ready, new=False)
    return None


def _claim(session: Session, provider: str, webhook_id: str) -> VendorReceipt | None:
    """Take the webhook id for the message being recorded; None when taken. Two messages with
    one id sent at once: the unique key lets one through, the other gets its receipt."""
    try:
        with session.begin_nested():
            session.add(VendorMessage(provider=provider, webhook_id=webhook_id))
    except IntegrityError:
        # The other message's transaction has committed by now.
        raced = first_answer(session, provider, webhook_id)
        if raced is None:
            raise
        return raced
    return None


def record_vendor_ready(
    session: Session, *, provider: str, external_id: str, webhook_id: str
) -> VendorReceipt:
    """The vendor says the learner's software is ready: a conditional ready_to_start. An id
    already used returns that message's first receipt and changes nothing."""
    require_provider(provider)
    seen = first_answer(session, provider, webhook_id)
    if seen is not None:
        return seen
    attempt = find_attempt_for_vendor(session, provider, attempt_code=None, external_id=external_id)
    raced = _claim(session, provider, webhook_id)
    if raced is not None:
        return raced
    ready = Status.ready_to_start
    transition, new = _vendor_request(session, attempt.id, ready, provider, webhook_id)
    return ReadyReceipt(transition, new)


def _vendor_request(
    session: Session, attempt_id: int, to_status: Status, provider: str, webhook_id: str
) -> tuple[Transition, bool]:
    """A vendor's request, keyed by its webhook id: the message asks once, whatever repeats."""
    return record_transition(
        session,
        attempt_id=attempt_id,
        to_status=to_status,
        source=Source.vendor,
        idempotency_key=review_key(provider, webhook_id),
    )
