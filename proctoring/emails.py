"""Status e-mails (SPEC §7): one template folder per kind, rendered strictly, sent once."""

from __future__ import annotations

import contextlib
import datetime as dt
import email.policy
import email.utils
import enum
import functools
import importlib.resources
import logging
import os
import smtplib
import ssl
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import jinja2
from sqlalchemy import delete, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from proctoring import statuses
from proctoring.clock import utcnow
from proctoring.db import upsert_insert
from proctoring.followups import FollowUpContext
from proctoring.models import Outbox, OutboxKind, OutboxState, SentEmail
from proctoring.outbox import (
    FollowUpResult,
    RetryPolicy,
    claim,
    fail_outbox,
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


class Undeliverable(Exception):
    """This one e-mail cannot be sent, and trying again cannot help (SPEC §3, §7).

    ``reason`` is stored on the follow-up and logged: it never holds an address.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unavailable(Exception):
    """The mail server cannot be used now: no e-mail of the batch can go, all wait to be
    tried again. ``reason`` holds no address and no secret."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InsecureLogin(Unavailable):
    """A password would cross the network in clear: a configuration to fix, not a message."""


_URL_OPTIONS = frozenset({"insecure_login"})
_YES = frozenset({"1", "true", "yes"})
_NO = frozenset({"0", "false", "no"})


class SMTPBackend:
    """smtp://host:port, smtps://…, with user and password if given.

    One connection per thread, reused: the follow-up workers run a thread pool whose threads
    share this backend, and an SMTP session holds one conversation at a time — two threads
    on one connection read each other's replies and can send a message to another learner.

    With a password on smtp://, the login goes over STARTTLS, and is refused where the server
    does not offer it unless the URL says ``?insecure_login=1``. ``ssl_context`` exists for
    tests that trust their own certificate; by default certificates are checked as the
    system's trust store says.
    """

    def __init__(
        self, url: str, timeout: float = 30.0, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("PROCTORQ_SMTP_URL must look like smtp://host:port or smtps://…")
        options = parse_qs(parts.query, keep_blank_values=True)
        unknown = sorted(set(options) - _URL_OPTIONS)
        if unknown:
            raise ValueError(f"PROCTORQ_SMTP_URL has an unknown option: {', '.join(unknown)}")
        insecure = options.get("insecure_login", ["0"])[-1].lower()
        if insecure not in _YES | _NO:
            raise ValueError("PROCTORQ_SMTP_URL: insecure_login must be 1 or 0")
        self._insecure_login = insecure in _YES
        self._secure = parts.scheme == "smtps"
        self._host = parts.hostname
        self._port = parts.port or (465 if self._secure else 25)
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._timeout = timeout
        self._context = ssl_context if ssl_context is not None else ssl.create_default_context()
        self._local = threading.local()

    @property
    def _connection(self) -> smtplib.SMTP | None:
        connection: smtplib.SMTP | None = getattr(self._local, "connection", None)
        return connection

    @_connection.setter
    def _connection(self, connection: smtplib.SMTP | None) -> None:
        self._local.connection = connection

    def _connect(self) -> smtplib.SMTP:
        if self._connection is None:
            try:
                self._connection = self._open()
            except InsecureLogin:
                raise
            except (smtplib.SMTPException, OSError) as exc:
                raise Unavailable(f"cannot use the mail server: {smtp_reason(exc)}") from exc
        return self._connection

    def _open(self) -> smtplib.SMTP:
        if self._secure:
            connection: smtplib.SMTP = smtplib.SMTP_SSL(
                self._host, self._port, timeout=self._timeout, context=self._context
            )
        else:
            connection = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
        try:
            connection.ehlo_or_helo_if_needed()
            if self._user is not None:
                if not self._secure and connection.has_extn("starttls"):
                    connection.starttls(context=self._context)
                    connection.ehlo()
                elif not self._secure and not self._insecure_login:
                    raise InsecureLogin(
                        "the mail server does not offer STARTTLS, and the password is not "
                        "sent in clear: use smtps://, a server with STARTTLS, or add "
                        "?insecure_login=1 to PROCTORQ_SMTP_URL"
                    )
                connection.login(self._user, self._password or "")
        except BaseException:
            connection.close()
            raise
        return connection

    def send(self, message: Message) -> None:
        """Raises Undeliverable for this message alone, Unavailable when the server cannot be
        used, and SMTPException or OSError for a passing failure of this message."""
        sender = email.utils.parseaddr(str(message["From"]))[1]
        recipient = str(message["To"])
        try:
            self._send(message, sender, recipient)
        except (smtplib.SMTPServerDisconnected, ConnectionError):
            # A reused connection may have been closed by the server: once more, afresh.
            self._drop()
            self._send(message, sender, recipient)

    def _send(self, message: Message, sender: str, recipient: str) -> None:
        connection = self._connect()
        utf8 = connection.has_extn("smtputf8")
        envelope_sender = envelope_address(sender, utf8=utf8)
        if envelope_sender is None:
            raise Unavailable(
                "the sender address (PROCTORQ_EMAIL_FROM) is not ASCII and the mail server "
                "does not offer SMTPUTF8"
            )
        envelope_recipient = envelope_address(recipient, utf8=utf8)
        if envelope_recipient is None:
            raise Undeliverable(
                "the recipient's address is not ASCII and the mail server does not offer SMTPUTF8"
            )
        if envelope_recipient != recipient:
            message.replace_header("To", envelope_recipient)
        if envelope_sender.isascii() and envelope_recipient.isascii():
            options: list[str] = []
            raw = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))  # SMTP wants CRLF
        else:
            # RFC 6531/6532: the address travels as UTF-8, in the envelope and the headers.
            options = ["SMTPUTF8"]
            raw = message.as_bytes(policy=email.policy.SMTPUTF8)
        try:
            connection.sendmail(envelope_sender, [envelope_recipient], raw, mail_options=options)
        except smtplib.SMTPRecipientsRefused as exc:
            code = min(code for code, _ in exc.recipients.values())
            if 500 <= code < 600:
                raise Undeliverable(f"the mail server refused the recipient: {code}") from None
            raise
        except UnicodeError:
            # Half a command may have gone out: this connection cannot be trusted further.
            self._drop()
            raise Undeliverable("the envelope cannot be encoded for the mail server") from None
        except (smtplib.SMTPException, ConnectionError):
            raise
        except OSError:
            # A time-out leaves the session in an unknown state: the next message starts afresh.
            self._drop()
            raise

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(OSError):
                self._connection.close()
            self._connection = None

    def close(self) -> None:
        """Ends this thread's connection."""
        if self._connection is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._connection.quit()
            self._connection = None


def envelope_address(address: str, *, utf8: bool) -> str | None:
    """The address as a server takes it: as it is with SMTPUTF8, else ASCII, the domain
    written in IDNA if need be. None when it cannot be written for that server."""
    if address.isascii() or utf8:
        return address
    local, at, domain = address.rpartition("@")
    if not at or not local.isascii():
        return None
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return None


def smtp_reason(exc: BaseException) -> str:
    """An error in words fit to store: its kind and the server's code, never its text,
    which may quote an address."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{type(exc).__name__} {exc.smtp_code}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _ in exc.recipients.values()})
        return f"{type(exc).__name__} {','.join(str(c) for c in codes)}"
    return type(exc).__name__


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
    2. send, over one connection for the whole batch. Each e-mail comes to one of three ends:
       sent; failed for good, with its reason (the server refused the recipient with a 5xx,
       or the address cannot be written for that server); or to try again (a 4xx, a
       connection error). One e-mail's end never stops the others.
    3. record: sent rows are marked sent, with patience — the message is out, so a database
       that is briefly away is waited for rather than the e-mail sent again. An unsent one
       gives its claim back: failed for good it ends ``failed`` for an operator to replay,
       else it is tried again by the policy. The status it reports is never undone.
    """
    policy = policy or RetryPolicy()
    result = FollowUpResult()
    with uow() as session:
        jobs = _claim(session, outbox_ids, sender, support_url, claim_seconds, result)
    outcomes = _send_each(jobs, backend)
    recorded = _with_patience(lambda: _record(uow, outcomes, policy), patience_seconds)
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
    """Everything the e-mails of a batch say, read once for the whole batch."""

    def __init__(
        self, session: Session, rows: Sequence[Outbox], sender: str, support_url: str
    ) -> None:
        self.sender = sender
        self.support_url = support_url
        self.facts = FollowUpContext(session, rows)

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
    uow: Callable[[], AbstractContextManager[Session]],
    outcomes: Sequence[_Outcome],
    policy: RetryPolicy,
) -> FollowUpResult:
    """Mark what was sent; give back the claims of the others, failed or to be tried again."""
    result = FollowUpResult()
    if not outcomes:
        return result
    now = utcnow()
    sent = [o.job for o in outcomes if o.state is _Sent.sent]
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
        for outcome in outcomes:
            if outcome.state is _Sent.sent:
                continue
            # Nothing went out: the claim is given back, so a retry or a replay sends afresh.
            job, reason = outcome.job, outcome.reason or "sending failed"
            session.execute(delete(SentEmail).where(SentEmail.transition_id == job.transition_id))
            if outcome.state is _Sent.failed:
                fail_outbox(session, [job.outbox_id], reason)
                result.failed.append(job.outbox_id)
                continue
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
