"""Delivering status e-mails over SMTP: each e-mail of a batch ends on its own, addresses as
the server can take them, the password only over STARTTLS, a connection per thread."""

from __future__ import annotations

import logging
import ssl
import threading
from email.message import Message
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from proctoring import emails, people
from proctoring.ledger import OUTBOX
from proctoring.models import Attempt, Outbox, OutboxState, SentEmail
from tests.support import factories as f
from tests.support.mail import SENDER, email_rows, send
from tests.support.servers import SMTPServer, free_port, self_signed_certificate

# --- one e-mail's end is its own (SPEC §7) ----------------------------------------------------


def submitted_to(session: Session, address: str) -> int:
    """A submitted attempt of a learner with this address; returns its e-mail follow-up."""
    user = f.user(session)
    people.upsert_user(session, user.user_id, user.username, address)
    attempt = f.attempt(session, f.exam(session, "course-v1:proctorq+Mail+2026"), user)
    f.move(session, attempt, "started", "learner")
    f.move(session, attempt, "submitted", "learner")
    (row,) = email_rows(session, attempt)
    return row


def mail_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "proctoring.emails"]


def no_address_in(texts: list[str | None]) -> bool:
    return not any(text and "@" in text for text in texts)


def test_an_address_that_cannot_be_sent_to_fails_alone_and_the_others_go_once(
    session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    rows = {
        "first": submitted_to(session, "first@example.test"),
        "unencodable": submitted_to(session, "jöhn@exämple.test"),
        "unknown": submitted_to(session, "nobody@example.test"),
        "busy": submitted_to(session, "busy@example.test"),
        "last": submitted_to(session, "last@example.test"),
    }
    ids = list(rows.values())
    with SMTPServer() as server:  # no SMTPUTF8
        server.refuse_recipient("nobody@example.test", "550 5.1.1 <nobody@example.test>: unknown")
        server.refuse_recipient("busy@example.test", "450 4.2.1 <busy@example.test>: busy", times=1)
        backend = emails.SMTPBackend(server.url)
        with caplog.at_level(logging.INFO, logger="proctoring.emails"):
            first = send(session, ids, backend)
        assert first.done == [rows["first"], rows["last"]]
        assert first.failed == [rows["unencodable"], rows["unknown"]]
        assert first.retry_ids == [rows["busy"]]

        replayed = send(session, ids, backend)  # the batch delivered again
        backend.close()
        assert (replayed.done, replayed.failed, replayed.retry_ids) == ([rows["busy"]], [], [])
        received = [recipients for _, recipients, _ in server.envelopes]
    assert received == [["first@example.test"], ["last@example.test"], ["busy@example.test"]]

    unencodable = session.get_one(Outbox, rows["unencodable"])
    unknown = session.get_one(Outbox, rows["unknown"])
    assert unencodable.state is OutboxState.failed and "SMTPUTF8" in (unencodable.detail or "")
    assert unknown.state is OutboxState.failed and "550" in (unknown.detail or "")
    assert unknown.done_at is not None
    sent = session.scalars(select(SentEmail).order_by(SentEmail.transition_id)).all()
    assert len(sent) == 3 and all(e.sent_at is not None for e in sent)
    assert no_address_in([unencodable.detail, unknown.detail])
    assert no_address_in([r.getMessage() for r in caplog.records])


def test_a_failed_address_once_corrected_is_sent_on_replay(session: Session) -> None:
    row = submitted_to(session, "nobody@example.test")
    with SMTPServer() as server:
        server.refuse_recipient("nobody@example.test", "550 5.1.1 no such user")
        backend = emails.SMTPBackend(server.url)
        assert send(session, [row], backend).failed == [row]
        attempt = session.get_one(Attempt, session.get_one(Outbox, row).attempt_id)
        user = session.get_one(f.User, attempt.user_id)
        people.upsert_user(session, user.user_id, user.username, "ada@example.test")
        assert OUTBOX.replay(session, [row]) == [row]
        assert send(session, [row], backend).done == [row]
        backend.close()
        assert [recipients for _, recipients, _ in server.envelopes] == [["ada@example.test"]]


def test_a_server_with_smtputf8_gets_the_addresses_as_they_are(session: Session) -> None:
    addresses = ["jöhn@exämple.test", "用户@例子.test", "plain@example.test"]
    rows = [submitted_to(session, address) for address in addresses]
    with SMTPServer(smtputf8=True) as server:
        backend = emails.SMTPBackend(server.url)
        assert send(session, rows, backend).done == rows
        backend.close()
        envelopes = [(recipients, utf8) for _, recipients, utf8 in server.envelopes]
        headers = [str(message["To"]) for message in server.messages]
    assert envelopes == [([addresses[0]], True), ([addresses[1]], True), ([addresses[2]], False)]
    assert headers == addresses


def test_a_non_ascii_domain_is_written_in_idna_for_a_server_without_smtputf8(
    session: Session,
) -> None:
    row = submitted_to(session, "user@exämple.test")
    with SMTPServer() as server:
        backend = emails.SMTPBackend(server.url)
        assert send(session, [row], backend).done == [row]
        backend.close()
        ((_, recipients, utf8),) = server.envelopes
        (message,) = server.messages
    assert (recipients, utf8) == (["user@xn--exmple-cua.test"], False)
    assert message["To"] == "user@xn--exmple-cua.test"


def test_an_unreachable_server_leaves_the_whole_batch_to_try_again(
    session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [submitted_to(session, f"learner-{n}@example.test") for n in range(3)]
    backend = emails.SMTPBackend(f"smtp://127.0.0.1:{free_port()}", timeout=5)
    with caplog.at_level(logging.INFO, logger="proctoring.emails"):
        result = send(session, rows, backend)
    assert (result.done, result.failed, result.retry_ids) == ([], [], rows)
    assert len(mail_lines(caplog)) == 1  # one line for the batch, not one per e-mail
    assert session.scalar(select(func.count()).select_from(SentEmail)) == 0
    for row in rows:
        pending = session.get_one(Outbox, row)
        assert pending.state is OutboxState.pending
        assert pending.detail == "cannot use the mail server: ConnectionRefusedError"


class Unforeseen:
    """A backend that breaks on one message in a way no handler names, then writes files."""

    def __init__(self, folder: Path, breaks_on: str) -> None:
        self.files = emails.FileBackend(folder)
        self.breaks_on = breaks_on

    def send(self, message: Message) -> None:
        if message["To"] == self.breaks_on:
            raise UnicodeEncodeError("ascii", self.breaks_on, 1, 2, "ordinal not in range(128)")
        self.files.send(message)

    def close(self) -> None:
        pass


def test_an_unforeseen_error_fails_that_email_and_the_others_are_recorded(
    session: Session, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [submitted_to(session, a) for a in ("a@example.test", "ä@example.test", "b@x.test")]
    with caplog.at_level(logging.INFO, logger="proctoring.emails"):
        result = send(session, rows, Unforeseen(tmp_path, "ä@example.test"))
    assert (result.done, result.failed, result.retry_ids) == ([rows[0], rows[2]], [rows[1]], [])
    assert len(list(tmp_path.glob("*.eml"))) == 2
    broken = session.get_one(Outbox, rows[1])
    assert (broken.state, broken.detail) == (
        OutboxState.failed,
        "sending failed: UnicodeEncodeError",
    )
    assert no_address_in([r.getMessage() for r in caplog.records])
    assert send(session, rows, Unforeseen(tmp_path, "")).done == []  # nothing twice


# --- logging in (STARTTLS) -------------------------------------------------------------------

LOGIN = {"mailer": "s3cret-pass"}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


def server_side(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def trusting(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


def test_the_password_goes_over_starttls(session: Session, certificate: tuple[Path, Path]) -> None:
    row = submitted_to(session, "ada@example.test")
    with SMTPServer(tls_context=server_side(certificate), logins=LOGIN) as server:
        backend = emails.SMTPBackend(
            f"smtp://mailer:s3cret-pass@127.0.0.1:{server.port}",
            ssl_context=trusting(certificate),
        )
        assert send(session, [row], backend).done == [row]
        backend.close()
        assert server.login_tries == [("mailer", True)]
        assert len(server.messages) == 1


def test_the_server_certificate_is_checked_by_default(
    session: Session, certificate: tuple[Path, Path]
) -> None:
    row = submitted_to(session, "ada@example.test")
    with SMTPServer(tls_context=server_side(certificate), logins=LOGIN) as server:
        backend = emails.SMTPBackend(f"smtp://mailer:s3cret-pass@127.0.0.1:{server.port}")
        result = send(session, [row], backend)
        assert (result.done, result.failed, result.retry_ids) == ([], [], [row])
        assert server.login_tries == [] and server.messages == []
    detail = session.get_one(Outbox, row).detail
    assert detail == "cannot use the mail server: SSLCertVerificationError"


def test_the_password_is_not_sent_in_clear_unless_the_url_says_so(
    session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [submitted_to(session, f"learner-{n}@example.test") for n in range(2)]
    with SMTPServer(logins=LOGIN, auth_require_tls=False) as server:  # no STARTTLS
        url = f"smtp://mailer:s3cret-pass@127.0.0.1:{server.port}"
        with caplog.at_level(logging.INFO, logger="proctoring.emails"):
            refused = send(session, rows, emails.SMTPBackend(url))
        assert (refused.done, refused.failed, refused.retry_ids) == ([], [], rows)
        assert server.login_tries == [] and server.messages == []
        (line,) = mail_lines(caplog)
        assert line.levelno == logging.ERROR
        assert "does not offer STARTTLS" in line.getMessage()
        assert "insecure_login=1" in line.getMessage()
        assert "s3cret" not in caplog.text
        for row in rows:
            pending = session.get_one(Outbox, row)
            assert pending.state is OutboxState.pending
            assert "STARTTLS" in (pending.detail or "")

        insecure = emails.SMTPBackend(url + "?insecure_login=1")
        assert send(session, rows, insecure).done == rows
        insecure.close()
        assert server.login_tries == [("mailer", False)]
        assert len(server.messages) == 2


def test_threads_sharing_a_backend_never_mix_their_messages() -> None:
    """The follow-up workers run a thread pool whose threads share one backend."""
    errors: list[str] = []
    with SMTPServer(delay=0.02) as server:
        backend = emails.SMTPBackend(server.url)

        def send_one(n: int) -> None:
            message = emails.build_message(
                emails.Rendered(f"subject {n}", f"text {n}", f"<p>{n}</p>"),
                sender=SENDER,
                recipient=f"learner-{n}@example.test",
                message_id=f"<transition-{n}@proctorq>",
            )
            try:
                backend.send(message)
                backend.send(message)  # a second use of this thread's connection
            except Exception as exc:
                errors.append(type(exc).__name__)
            finally:
                backend.close()

        threads = [threading.Thread(target=send_one, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        envelopes = [recipients for _, recipients, _ in server.envelopes]
        headers = [[str(message["To"])] for message in server.messages]
    assert errors == []
    assert envelopes == headers
    expected = [[f"learner-{n}@example.test"] for n in range(6)] * 2
    assert sorted(envelopes) == sorted(expected)
