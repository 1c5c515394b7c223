"""Where a built e-mail goes: ``.eml`` files in a folder, or an SMTP server.

Each transport is a ``Backend``; what befalls one message is told by the exceptions here, which
the sending step turns into the follow-up's end.
"""

from __future__ import annotations

import contextlib
import email.policy
import email.utils
import os
import smtplib
import ssl
import tempfile
import threading
from email.message import Message
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit


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
    """This one e-mail cannot be sent, and trying again cannot help: it ends ``failed``
    (docs/behaviour.md, "Retries and failure").

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


def open_backend(smtp_url: str | None, mail_dir: Path) -> Backend:
    return SMTPBackend(smtp_url) if smtp_url else FileBackend(mail_dir)
