"""Status e-mails (SPEC §7): one template folder per kind, rendered strictly, sent once."""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import functools
import importlib.resources
import logging
import os
import smtplib
import ssl
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

import jinja2
from sqlalchemy import delete, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from proctoring import statuses
from proctoring.clock import utcnow
from proctoring.db import upsert_insert
from proctoring.models import (
    Attempt,
    Course,
    Exam,
    Outbox,
    OutboxKind,
    OutboxState,
    SentEmail,
    Transition,
    User,
)
from proctoring.outbox import (
    FollowUpResult,
    RetryPolicy,
    claim,
    finish,
    postpone,
    postpone_until,
)
from proctoring.statuses import Status

log = logging.getLogger(__name__)
T = TypeVar("T")

# --- rendering --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """What every status e-mail tells, in both the text and the HTML part."""

    username: str
    course_name: str
    exam_name: str
    status: Status
    contact_url: str


def _common(facts: Facts) -> dict[str, Any]:
    return {
        "username": facts.username,
        "course_name": facts.course_name,
        "exam_name": facts.exam_name,
        "status_in_words": statuses.in_words(facts.status),
        "contact_url": facts.contact_url,
    }


def attempt_submitted(facts: Facts) -> dict[str, Any]:
    return _common(facts)


def attempt_verified(facts: Facts) -> dict[str, Any]:
    return _common(facts)


def attempt_rejected(facts: Facts) -> dict[str, Any]:
    return {**_common(facts), "appeal_url": facts.contact_url}


# Adding an e-mail: a folder under templates/emails/ and a context function here.
EMAILS: dict[Status, tuple[str, Callable[[Facts], dict[str, Any]]]] = {
    Status.submitted: ("attempt-submitted", attempt_submitted),
    Status.verified: ("attempt-verified", attempt_verified),
    Status.rejected: ("attempt-rejected", attempt_rejected),
}


def templates_dir() -> Path:
    return Path(str(importlib.resources.files("templates"))) / "emails"


@functools.cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        keep_trailing_newline=True,
    )


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def render(template: str, context: dict[str, Any]) -> Rendered:
    env = environment()
    subject = env.get_template(f"{template}/subject.txt").render(context)
    return Rendered(
        # One line whatever a course or exam name holds: no header can be injected.
        subject=" ".join(subject.split()),
        text=env.get_template(f"{template}/body.txt").render(context),
        html=env.get_template(f"{template}/body.html").render(context),
    )


def build_message(rendered: Rendered, *, sender: str, recipient: str, message_id: str) -> Message:
    """A text and an HTML part. Built with the classic MIME classes: the modern EmailMessage
    parses every header it is given, which cost ~1.4 ms a message against ~0.1 ms here."""
    for value in (rendered.subject, sender, recipient, message_id):
        if "\r" in value or "\n" in value:
            raise ValueError("a header value may not contain a line break")
    message = MIMEMultipart("alternative")
    message["Subject"] = (
        rendered.subject
        if rendered.subject.isascii()
        else Header(rendered.subject, "utf-8").encode()
    )
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = email.utils.formatdate(localtime=False)
    # Stable per transition: a receiving server can drop the rare repeat (see RELIABILITY.md).
    message["Message-ID"] = message_id
    message.attach(MIMEText(rendered.text, "plain", "utf-8"))
    message.attach(MIMEText(rendered.html, "html", "utf-8"))
    return message


# --- sending ----------------------------------------------------------------------------------


class Backend(Protocol):
    def send(self, message: Message) -> None: ...

    def close(self) -> None: ...


class FileBackend:
    """The embedded default: each e-mail is an .eml file in a folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, message: Message) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = str(message["Message-ID"]).strip("<>").split("@")[0] + ".eml"
        fd, temporary = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(message.as_bytes())
        os.replace(temporary, self.folder / name)

    def close(self) -> None:
        pass


class SMTPBackend:
    """smtp://host:port, smtps://…, with user and password if given; one connection reused."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("PROCTORQ_SMTP_URL must look like smtp://host:port or smtps://…")
        self._secure = parts.scheme == "smtps"
        self._host = parts.hostname
        self._port = parts.port or (465 if self._secure else 25)
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._timeout = timeout
        self._connection: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        if self._connection is None:
            if self._secure:
                connection: smtplib.SMTP = smtplib.SMTP_SSL(
                    self._host,
                    self._port,
                    timeout=self._timeout,
                    context=ssl.create_default_context(),
                )
            else:
                connection = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
            if self._user is not None:
                connection.login(self._user, self._password or "")
            self._connection = connection
        return self._connection

    def send(self, message: Message) -> None:
        sender = email.utils.parseaddr(str(message["From"]))[1]
        recipient = str(message["To"])
        raw = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))  # SMTP wants CRLF
        try:
            self._connect().sendmail(sender, [recipient], raw)
        except (smtplib.SMTPServerDisconnected, ConnectionError):
            # A reused connection may have been closed by the server: once more, afresh.
            self.close()
            self._connect().sendmail(sender, [recipient], raw)

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._connection.quit()
            self._connection = None


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
    policy: RetryPolicy | None = None,
) -> FollowUpResult:
    """Send the status e-mail of each follow-up, at most one per applied transition.

    Three short transactions, none held open while a mail server answers:

    1. claim: a sent-e-mail row, unique per transition, is committed before anything is sent.
       A claim younger than ``claim_seconds`` belongs to a worker sending right now: this
       delivery leaves it alone until the claim is that old (uncounted, no failed try); an
       older unsent one was left by a worker that died mid-send, and is taken over.
    2. send, over one connection for the whole batch.
    3. record: sent rows are marked sent, with patience — the message is out, so a database
       that is briefly away is waited for rather than the e-mail sent again. A failed send
       gives its claim back, to be tried again by the policy; the status it reports is never
       undone.
    """
    policy = policy or RetryPolicy()
    result = FollowUpResult()
    with uow() as session:
        jobs = _claim(session, outbox_ids, sender, support_url, claim_seconds, result)
    sent: list[_Job] = []
    failed: list[tuple[_Job, str]] = []
    for job in jobs:
        try:
            backend.send(job.message)
        except (smtplib.SMTPException, OSError) as exc:
            failed.append((job, f"sending failed: {type(exc).__name__}"))
        else:
            sent.append(job)
    recorded = _with_patience(lambda: _record(uow, sent, failed, policy), patience_seconds)
    result.done.extend(job.outbox_id for job in sent)
    result.failed.extend(recorded.failed)
    result.postponed(recorded.retry_ids, recorded.retry_after)
    return result


def _claim(
    session: Session,
    outbox_ids: Sequence[int],
    sender: str,
    support_url: str,
    claim_seconds: float,
    result: FollowUpResult,
) -> list[_Job]:
    rows = claim(session, OutboxKind.email, outbox_ids)
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
            finish(row, OutboxState.done, "already sent")
            result.done.append(row.id)
        elif (now - claimed.claimed_at).total_seconds() >= claim_seconds:
            log.warning("taking over the e-mail of transition %s from a lost worker", transition_id)
            claimed.claimed_at = now
            wanted.append(row)
        else:  # being sent by another worker right now, or left by one that died
            takeover = claimed.claimed_at + dt.timedelta(seconds=claim_seconds)
            session.flush()
            postpone_until(session, [row.id], takeover)
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
    """Everything the e-mails of a batch say, read in one query per table."""

    def __init__(
        self, session: Session, rows: Sequence[Outbox], sender: str, support_url: str
    ) -> None:
        self.sender = sender
        self.support_url = support_url
        transition_ids = [row.transition_id for row in rows]
        self.results = dict(
            session.execute(
                select(Transition.id, Transition.result_status).where(
                    Transition.id.in_(transition_ids)
                )
            ).all()
        )
        self.attempts = {
            a.id: a
            for a in session.scalars(
                select(Attempt).where(Attempt.id.in_({row.attempt_id for row in rows}))
            )
        }
        self.exams = {
            e.id: e
            for e in session.scalars(
                select(Exam).where(Exam.id.in_({a.exam_id for a in self.attempts.values()}))
            )
        }
        self.courses = {
            c.course_id: c
            for c in session.scalars(
                select(Course).where(
                    Course.course_id.in_({e.course_id for e in self.exams.values()})
                )
            )
        }
        self.users = {
            u.user_id: u
            for u in session.scalars(
                select(User).where(User.user_id.in_({a.user_id for a in self.attempts.values()}))
            )
        }

    def _status(self, row: Outbox) -> Status:
        assert row.transition_id is not None
        status = self.results[row.transition_id]
        assert status is not None
        return status

    def template(self, row: Outbox) -> str:
        return EMAILS[self._status(row)][0]

    def recipient(self, row: Outbox) -> str:
        return self.users[self.attempts[row.attempt_id].user_id].email

    def message(self, row: Outbox) -> Message:
        status = self._status(row)
        attempt = self.attempts[row.attempt_id]
        exam = self.exams[attempt.exam_id]
        course = self.courses.get(exam.course_id)
        template, context_of = EMAILS[status]
        facts = Facts(
            username=self.users[attempt.user_id].username,
            course_name=(course.name if course and course.name else "your course"),
            exam_name=exam.exam_name,
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
    uow: Callable[[], AbstractContextManager[Session]],
    sent: Sequence[_Job],
    failed: Sequence[tuple[_Job, str]],
    policy: RetryPolicy,
) -> FollowUpResult:
    """Mark what was sent; give back the claims of what failed and set their next try."""
    result = FollowUpResult()
    if not sent and not failed:
        return result
    now = utcnow()
    with uow() as session:
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
        for job, reason in failed:
            session.execute(delete(SentEmail).where(SentEmail.transition_id == job.transition_id))
            over, wait = postpone(session, [job.outbox_id], reason, policy)
            result.failed.extend(over)
            if not over:
                result.postponed([job.outbox_id], wait)
    return result


def _with_patience(work: Callable[[], T], patience_seconds: float) -> T:
    """Retry ``work`` while the database is away, up to ``patience_seconds``."""
    deadline = time.monotonic() + patience_seconds
    pause = 0.25
    while True:
        try:
            return work()
        except (OperationalError, InterfaceError):
            if time.monotonic() + pause > deadline:
                raise
            log.warning("e-mails sent but not yet recorded: the database is away; waiting")
            time.sleep(pause)
            pause = min(pause * 2, 5.0)


def open_backend(smtp_url: str | None, mail_dir: Path) -> Backend:
    return SMTPBackend(smtp_url) if smtp_url else FileBackend(mail_dir)
