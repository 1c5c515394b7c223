"""Sending status e-mails: one per applied transition, claimed before sending, retried."""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from proctoring import emails, people
from proctoring.clock import utcnow
from proctoring.models import Attempt, Outbox, OutboxState, SentEmail
from tests.support import factories as f
from tests.support.mail import SENDER, SUPPORT, email_rows, send
from tests.support.servers import SMTPServer


def submitted(session: Session, course_name: str | None = "Rocket Science") -> Attempt:
    exam = f.exam(session, "course-v1:proctorq+Mail+2026", exam_name="Final <b>exam</b>")
    if course_name:
        people.put_course(session, exam.course_id, name=course_name, contact_url=None)
    attempt = f.attempt(session, exam)
    f.move(session, attempt, "started", "learner")
    f.move(session, attempt, "submitted", "learner")
    return attempt


def test_one_file_per_transition_by_default(session: Session, tmp_path: Path) -> None:
    attempt = submitted(session)
    ids = email_rows(session, attempt)
    backend = emails.FileBackend(tmp_path)
    assert send(session, ids, backend).done == ids
    assert send(session, ids, backend).done == []  # done already
    files = list(tmp_path.glob("*.eml"))
    assert len(files) == 1
    text = files[0].read_text()
    assert "Rocket Science" in text
    assert "Subject: Proctoring review in progress" in text


def test_smtp_sends_once_with_the_facts(session: Session) -> None:
    attempt = submitted(session)
    user = session.get_one(f.User, attempt.user_id)
    ids = email_rows(session, attempt)
    with SMTPServer() as server:
        backend = emails.SMTPBackend(server.url)
        send(session, ids, backend)
        send(session, ids, backend)
        backend.close()
        (message,) = server.messages
    assert message["To"] == user.email
    assert message["Message-ID"].startswith("<transition-")
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert "Final &lt;b&gt;exam&lt;/b&gt;" in html
    assert "Final <b>exam</b>" in text
    assert user.username in text
    assert SUPPORT in text
    assert "Rocket Science" in html
    claimed = session.scalars(select(SentEmail)).one()
    assert claimed.sent_at is not None
    assert claimed.template == "attempt-submitted"


def test_a_course_without_name_is_your_course(session: Session, tmp_path: Path) -> None:
    attempt = submitted(session, course_name=None)
    send(session, email_rows(session, attempt), emails.FileBackend(tmp_path))
    (file,) = tmp_path.glob("*.eml")
    assert "your course" in file.read_text()


def test_a_failed_send_is_retried_and_leaves_no_claim(session: Session) -> None:
    attempt = submitted(session)
    ids = email_rows(session, attempt)
    with SMTPServer() as server:
        server.refuse_next(1)
        backend = emails.SMTPBackend(server.url)
        first = send(session, ids, backend)
        assert first.retry_ids == ids
        assert session.scalar(select(func.count()).select_from(SentEmail)) == 0
        assert session.get_one(Outbox, ids[0]).state is OutboxState.pending
        second = send(session, ids, backend)
        backend.close()
        assert second.done == ids
        assert len(server.messages) == 1
    session.refresh(attempt)
    assert attempt.status.value == "submitted"  # a failed e-mail never undoes the status


def claim_elsewhere(session: Session, attempt: Attempt, **fields: object) -> Outbox:
    """A claim made by another worker, as it would be committed there."""
    row = session.get_one(Outbox, email_rows(session, attempt)[0])
    session.add(
        SentEmail(
            attempt_id=attempt.id,
            transition_id=row.transition_id,
            template="attempt-submitted",
            recipient="x@example.test",
            **fields,
        )
    )
    session.flush()
    return row


def test_a_claim_being_sent_elsewhere_is_left_alone(session: Session, tmp_path: Path) -> None:
    attempt = submitted(session)
    row = claim_elsewhere(session, attempt)
    row.deliveries = 3
    result = send(session, [row.id], emails.FileBackend(tmp_path), claim_seconds=600)
    assert (result.done, result.retry_ids) == ([], [row.id])
    assert result.retry_after == pytest.approx(600, abs=5)
    assert list(tmp_path.iterdir()) == []
    session.refresh(row)
    assert row.state is OutboxState.pending
    # Nothing delivers it before the claim can be taken over, and waiting is no failed try:
    # the takeover of a claim left by a dead worker does happen.
    claimed = session.scalars(select(SentEmail.claimed_at)).one()
    assert row.next_try_at == claimed + dt.timedelta(seconds=600)
    assert (row.deliveries, row.tries) == (0, 0)


def test_a_claim_sent_elsewhere_means_no_second_mail(session: Session, tmp_path: Path) -> None:
    attempt = submitted(session)
    row = claim_elsewhere(session, attempt, sent_at=utcnow())
    result = send(session, [row.id], emails.FileBackend(tmp_path))
    assert result.done == [row.id] and list(tmp_path.iterdir()) == []
    assert row.detail == "already sent"


def test_a_claim_left_by_a_lost_worker_is_taken_over(session: Session, tmp_path: Path) -> None:
    attempt = submitted(session)
    row = claim_elsewhere(session, attempt, claimed_at=utcnow() - dt.timedelta(minutes=20))
    result = send(session, [row.id], emails.FileBackend(tmp_path), claim_seconds=600)
    assert result.done == [row.id]
    assert len(list(tmp_path.glob("*.eml"))) == 1


def test_sent_mail_is_recorded_even_if_the_database_is_briefly_away(
    session: Session, tmp_path: Path
) -> None:
    import sqlalchemy.exc

    attempt = submitted(session)
    ids = email_rows(session, attempt)
    calls = {"n": 0}

    @contextlib.contextmanager
    def flaky():
        calls["n"] += 1
        if calls["n"] in (2, 3):  # the record step fails twice, then works
            raise sqlalchemy.exc.OperationalError("UPDATE", {}, Exception("server closed"))
        yield session

    backend = emails.FileBackend(tmp_path)
    result = emails.send_status_emails(
        flaky, ids, backend, sender=SENDER, support_url=SUPPORT, patience_seconds=10
    )
    assert result.done == ids and calls["n"] == 4
    assert len(list(tmp_path.glob("*.eml"))) == 1  # sent once, recorded on the third try


def test_the_smtp_url_is_checked() -> None:
    with pytest.raises(ValueError, match="smtp://"):
        emails.SMTPBackend("http://127.0.0.1:25")
    with pytest.raises(ValueError, match="unknown option: tls"):
        emails.SMTPBackend("smtp://127.0.0.1:25?tls=1")
    with pytest.raises(ValueError, match="insecure_login"):
        emails.SMTPBackend("smtp://u:p@127.0.0.1:25?insecure_login=maybe")
