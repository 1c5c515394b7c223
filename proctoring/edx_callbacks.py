"""The calls a vendor speaking edx-proctoring's REST protocol makes to us: "ready" and
"reviewed" (docs/behaviour.md, "Vendors that speak edx-proctoring's REST protocol").

The vendor names an attempt by its session id alone, and the protocol has no message id: a
repeated "ready" is the same request (one per attempt), and a review whose body equals the
latest one of that attempt from that vendor is a repeat.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.settings import DEFAULT_VOCABULARY
from proctoring import reviews
from proctoring.errors import DomainError, Forbidden, NotFound
from proctoring.models import Attempt, Exam, Review, Transition, User
from proctoring.statuses import Source, Status
from proctoring.transitions import record_transition


class NoLongerProctored(DomainError):
    """The attempt's exam is not proctored any more: its review is not kept (412)."""


def session_holder(session: Session, provider: str, external_id: str) -> Attempt:
    """The live attempt holding this session id. None holds it: NotFound (an archived or
    declined attempt released it); another vendor's session: Forbidden."""
    held = session.scalars(
        select(Attempt)
        .where(Attempt.external_id == external_id, Attempt.archived_at.is_(None))
        .order_by(Attempt.provider != provider, Attempt.id)
    ).first()
    if held is None:
        raise NotFound(f"no attempt holds the session {external_id!r}")
    if held.provider != provider:
        raise Forbidden(f"the session {external_id!r} is not one of provider {provider!r}")
    return held


def ready_key(provider: str, attempt_id: int) -> str:
    """One "ready" per attempt: the vendor may say it again, it asks once."""
    return f"edx-rest-ready:{provider}:{attempt_id}"


def record_ready(session: Session, provider: str, external_id: str) -> Transition:
    """The learner's software is ready: a conditional ready_to_start, as §4 says."""
    attempt = session_holder(session, provider, external_id)
    transition, _ = record_transition(
        session,
        attempt_id=attempt.id,
        to_status=Status.ready_to_start,
        source=Source.vendor,
        idempotency_key=ready_key(provider, attempt.id),
    )
    return transition


def comments_text(comments: Sequence[Mapping[str, Any]]) -> str:
    """The comments as stored: canonical JSON, so an equal body stores equal text."""
    if not comments:
        return ""
    # ASCII: a vendor's extra fields are kept as sent, and a lone surrogate in one is text
    # no database stores; escaped, it is.
    return json.dumps(list(comments), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def record_review(
    session: Session,
    provider: str,
    external_id: str,
    *,
    status: str,
    comments: Sequence[Mapping[str, Any]] = (),
    reviewed_by: str | None = None,
) -> Review:
    """Store a review of the session and apply, hold or keep it as §5 says; a body equal to
    the latest review of the attempt from this vendor changes nothing."""
    attempt = session_holder(session, provider, external_id)
    exam = session.get(Exam, attempt.exam_id)
    if exam is None or not exam.is_proctored:
        raise NoLongerProctored("Exam no longer proctored")
    text = comments_text(comments)
    latest = session.scalars(
        select(Review)
        .where(Review.attempt_id == attempt.id, Review.provider == provider)
        .order_by(Review.id.desc())
        .limit(1)
    ).first()
    if latest is not None and (latest.review_status, latest.reviewed_by, latest.comments) == (
        status,
        reviewed_by,
        text,
    ):
        return latest
    receipt = reviews.record_review(
        session,
        provider=provider,
        webhook_id=_message_id(session, provider, attempt.id, status, reviewed_by, text),
        status=status,
        external_id=external_id,
        reviewed_by=reviewed_by,
        comments=text,
        vocabulary=DEFAULT_VOCABULARY,
        human=reviewed_by is not None and _known_user(session, reviewed_by),
    )
    assert isinstance(receipt, reviews.ReviewReceipt)  # its id is new to this vendor
    return receipt.review


def _message_id(
    session: Session,
    provider: str,
    attempt_id: int,
    status: str,
    reviewed_by: str | None,
    text: str,
) -> str:
    """The review's webhook id, which the protocol does not give: the attempt, the body and
    how many reviews came before. Two equal bodies sent at once take the same id, and the
    unique key keeps one; two different ones never collide."""
    before = session.scalar(
        select(func.count())
        .select_from(Review)
        .where(Review.attempt_id == attempt_id, Review.provider == provider)
    )
    body = json.dumps([status, reviewed_by, text]).encode()
    return f"edx-rest:{attempt_id}:{before}:{hashlib.sha256(body).hexdigest()[:32]}"


def _known_user(session: Session, email: str) -> bool:
    """``reviewed_by`` counts as a human reviewer when it is the e-mail of a known user."""
    found = session.scalar(select(User.user_id).where(User.email == email).limit(1))
    return found is not None
