"""The status e-mail of each follow-up, at most one per applied transition: claim, send, record."""

from __future__ import annotations

import datetime as dt
import enum
import logging
import smtplib
import traceback
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from email.message import Message

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from proctoring import followups
from proctoring.clock import utcnow
from proctoring.db import upsert_insert
from proctoring.emails.render import EMAILS, Facts, build_message, render
from proctoring.emails.transports import (
    Backend,
    InsecureLogin,
    Unavailable,
    Undeliverable,
    smtp_reason,
)
from proctoring.models import Outbox, OutboxKind, OutboxState, SentEmail

# The package's one logger, as before it was split: operators filter e-mail lines by it.
log = logging.getLogger("proctoring.emails")


@dataclass
class _Job:
    outbox_id: int
    transition_id: int
    message: Message


def send_status_emails(
    uow: Callable[[], AbstractContextManager[Session]],
    outbox_ids: Sequence[int],
    backend: Backend,
    *,
    sender: str,
    support_url: str,
    claim_seconds: float = 600.0,
    patience_seconds: float = 120.0,
    policy: followups.RetryPolicy | None = None,
) -> followups.FollowUpResult:
    """Send the status e-mail of each follow-up, at most one per applied transition.

    Three short transactions, none held open while a mail server answers:

    1. claim: a sent-e-mail row, unique per transition, is committed before anything is sent.
       A claim younger than ``claim_seconds`` belongs to a worker sending right now: this
       delivery leaves it alone until the claim is that old (uncounted, no failed try); an
       older unsent one was left by a worker that died mid-send, and is taken over.
    2. send, over one connection for the whole batch. Each e-mail comes to one of three ends:
       sent; failed for good, with its reason (the server refused the recipient with a 5xx,
       or the address cannot be written for that server); or to try again (a 4xx, a
       connection error). One e-mail's end never stops the others.
    3. record: sent rows are marked sent, with patience — the message is out, so a database
       that is briefly away is waited for rather than the e-mail sent again. An unsent one
       gives its claim back: failed for good it ends ``failed`` for an operator to replay,
       else it is tried again by the policy. The status it reports is never undone.
    """
    policy = policy or followups.RetryPolicy()
    result = followups.FollowUpResult()
    with uow() as session:
        jobs = _claim(session, outbox_ids, sender, support_url, claim_seconds, result)
    outcomes = _send_each(jobs, backend)
    recorded = followups.FollowUpResult()
    if outcomes:
        recorded = followups.record_answers(
            uow, lambda session, into: _record(session, outcomes, policy, into), patience_seconds
        )
    result.done.extend(o.job.outbox_id for o in outcomes if o.state is _Sent.sent)
    result.failed.extend(recorded.failed)
    result.postponed(recorded.retry_ids, recorded.retry_after)
    return result


class _Sent(enum.Enum):
    sent = "sent"
    failed = "failed"  # for good: trying again cannot help
    later = "later"  # to try again


@dataclass(frozen=True)
class _Outcome:
    job: _Job
    state: _Sent
    reason: str | None = None


def _send_each(jobs: Sequence[_Job], backend: Backend) -> list[_Outcome]:
    """Send each e-mail; what befalls one never keeps the others from being sent or recorded."""
    outcomes: list[_Outcome] = []
    for index, job in enumerate(jobs):
        try:
            backend.send(job.message)
        except Undeliverable as exc:
            log.warning("the e-mail of transition %s failed: %s", job.transition_id, exc.reason)
            outcomes.append(_Outcome(job, _Sent.failed, exc.reason))
        except Unavailable as exc:
            # The server, not this message: the rest of the batch would only fail the same way.
            rest = jobs[index:]
            level = logging.ERROR if isinstance(exc, InsecureLogin) else logging.WARNING
            log.log(level, "%d e-mails not sent, to try again: %s", len(rest), exc.reason)
            outcomes.extend(_Outcome(j, _Sent.later, exc.reason) for j in rest)
            break
        except (smtplib.SMTPException, OSError) as exc:
            reason = f"sending failed: {smtp_reason(exc)}"
            log.info("the e-mail of transition %s waits: %s", job.transition_id, reason)
            outcomes.append(_Outcome(job, _Sent.later, reason))
        except Exception as exc:
            # Unforeseen, so it will not pass by itself: this e-mail fails, as a task's
            # unforeseen error would, and the others are still sent and recorded. The place
            # is logged, not the text, which may quote an address.
            where = traceback.extract_tb(exc.__traceback__)[-1]
            reason = f"sending failed: {type(exc).__name__}"
            log.error(
                "the e-mail of transition %s failed: %s at %s:%s",
                job.transition_id,
                reason,
                where.filename,
                where.lineno,
            )
            outcomes.append(_Outcome(job, _Sent.failed, reason))
        else:
            outcomes.append(_Outcome(job, _Sent.sent))
    return outcomes


def _claim(
    session: Session,
    outbox_ids: Sequence[int],
    sender: str,
    support_url: str,
    claim_seconds: float,
    result: followups.FollowUpResult,
) -> list[_Job]:
    rows = followups.claim(session, OutboxKind.email, outbox_ids)
    if not rows:
        return []
    now = utcnow()
    by_transition = {row.transition_id: row for row in rows if row.transition_id is not None}
    existing = {
        e.transition_id: e
        for e in session.scalars(
            select(SentEmail).where(SentEmail.transition_id.in_(by_transition))
        )
    }
    wanted: list[Outbox] = []
    for transition_id, row in by_transition.items():
        claimed = existing.get(transition_id)
        if claimed is None:
            wanted.append(row)
        elif claimed.sent_at is not None:
            followups.finish(row, OutboxState.done, "already sent")
            result.done.append(row.id)
        elif (now - claimed.claimed_at).total_seconds() >= claim_seconds:
            log.warning("taking over the e-mail of transition %s from a lost worker", transition_id)
            claimed.claimed_at = now
            wanted.append(row)
        else:  # being sent by another worker right now, or left by one that died
            takeover = claimed.claimed_at + dt.timedelta(seconds=claim_seconds)
            session.flush()
            followups.postpone_until(session, [row.id], takeover)
            result.postponed([row.id], (takeover - now).total_seconds())
    messages = _Messages(session, wanted, sender, support_url)
    fresh = [row for row in wanted if row.transition_id not in existing]
    won = _insert_claims(session, fresh, messages, now)
    return [
        _Job(row.id, row.transition_id, messages.message(row))
        for row in wanted
        if row.transition_id is not None
        and (row.transition_id in existing or row.transition_id in won)
    ]


def _insert_claims(
    session: Session, rows: Sequence[Outbox], messages: _Messages, now: dt.datetime
) -> set[int]:
    """Claim in one statement; a claim another worker made a moment ago is not ours."""
    if not rows:
        return set()
    insert = upsert_insert(session)
    statement = (
        insert(SentEmail)
        .on_conflict_do_nothing(index_elements=["transition_id"])
        .returning(SentEmail.transition_id)
    )
    claims = [
        {
            "attempt_id": row.attempt_id,
            "transition_id": row.transition_id,
            "template": messages.template(row),
            "recipient": messages.recipient(row),
            "claimed_at": now,
        }
        for row in rows
    ]
    return set(session.scalars(statement, claims))


class _Messages:
    """Everything the e-mails of a batch say, read once for the whole batch."""

    def __init__(
        self, session: Session, rows: Sequence[Outbox], sender: str, support_url: str
    ) -> None:
        self.sender = sender
        self.support_url = support_url
        self.facts = followups.FollowUpContext(session, rows)

    def template(self, row: Outbox) -> str:
        return EMAILS[self.facts.result(row)][0]

    def recipient(self, row: Outbox) -> str:
        return self.facts.user(row).email

    def message(self, row: Outbox) -> Message:
        status = self.facts.result(row)
        course = self.facts.course(row)
        template, context_of = EMAILS[status]
        facts = Facts(
            username=self.facts.user(row).username,
            course_name=(course.name if course and course.name else "your course"),
            exam_name=self.facts.exam(row).exam_name,
            status=status,
            contact_url=(course.contact_url if course and course.contact_url else self.support_url),
        )
        return build_message(
            render(template, context_of(facts)),
            sender=self.sender,
            recipient=self.recipient(row),
            message_id=f"<transition-{row.transition_id}@proctorq>",
        )


def _record(
    session: Session,
    outcomes: Sequence[_Outcome],
    policy: followups.RetryPolicy,
    result: followups.FollowUpResult,
) -> None:
    """Mark what was sent; give back the claims of the others, failed or to be tried again."""
    now = utcnow()
    sent = [o.job for o in outcomes if o.state is _Sent.sent]
    if sent:
        session.execute(
            update(SentEmail)
            .where(SentEmail.transition_id.in_([job.transition_id for job in sent]))
            .values(sent_at=now)
        )
        session.execute(
            update(Outbox)
            .where(Outbox.id.in_([job.outbox_id for job in sent]))
            .values(state=OutboxState.done, done_at=now, detail=None)
        )
    for outcome in outcomes:
        if outcome.state is _Sent.sent:
            continue
        # Nothing went out: the claim is given back, so a retry or a replay sends afresh.
        job, reason = outcome.job, outcome.reason or "sending failed"
        session.execute(delete(SentEmail).where(SentEmail.transition_id == job.transition_id))
        if outcome.state is _Sent.failed:
            followups.fail_outbox(session, [job.outbox_id], reason)
            result.failed.append(job.outbox_id)
            continue
        over, wait = followups.postpone(session, [job.outbox_id], reason, policy)
        result.failed.extend(over)
        if not over:
            result.postponed([job.outbox_id], wait)
