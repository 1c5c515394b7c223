"""Real servers on 127.0.0.1 for tests and benchmarks: an SMTP server and an HTTP endpoint."""

from __future__ import annotations

import asyncio
import datetime
import email
import email.policy
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Collector:
    def __init__(self, delay: float, refuse: Callable[[], bool]) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str], bool]] = []
        self.delay = delay
        self.refuse = refuse
        self.lock = threading.Lock()
        self.recipient_replies: dict[str, list[str | None]] = {}
        self.logins: dict[str, str] = {}
        self.login_tries: list[tuple[str, bool]] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self.lock:
            replies = self.recipient_replies.get(address, [None])
            reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.refuse():
            return "451 4.3.0 try again later"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)  # type: ignore[arg-type]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.smtp_utf8))
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = data.login.decode(), data.password.decode()
        with self.lock:
            self.login_tries.append((login, session.ssl is not None))
        return AuthResult(success=self.logins.get(login) == password, handled=False)


class SMTPServer:
    """aiosmtpd on a free port; ``messages`` holds what it accepted.

    ``smtputf8`` advertises SMTPUTF8; ``tls_context`` offers STARTTLS; ``logins`` (user to
    password) enables AUTH, over TLS only unless ``auth_require_tls`` is false.
    """

    def __init__(
        self,
        delay: float = 0.0,
        *,
        smtputf8: bool = False,
        tls_context: ssl.SSLContext | None = None,
        logins: dict[str, str] | None = None,
        auth_require_tls: bool = True,
    ) -> None:
        self.port = free_port()
        self._refusing = 0
        self._handler = _Collector(delay, self._refuse)
        parameters: dict[str, Any] = {"enable_SMTPUTF8": smtputf8}
        if tls_context is not None:
            parameters["tls_context"] = tls_context
        if logins is not None:
            self._handler.logins = dict(logins)
            parameters["authenticator"] = self._handler.authenticate
            parameters["auth_require_tls"] = auth_require_tls
        self._parameters = parameters
        self._controller = self._new_controller()
        self._stopped = False

    def _new_controller(self) -> Controller:
        return Controller(self._handler, hostname="127.0.0.1", port=self.port, **self._parameters)

    def _refuse(self) -> bool:
        if self._refusing:
            self._refusing -= 1
            return True
        return False

    def refuse_next(self, count: int) -> None:
        self._refusing = count

    def refuse_recipient(self, address: str, reply: str, times: int | None = None) -> None:
        """Answer RCPT for ``address`` with ``reply``: ``times`` times, or always if None."""
        with self._handler.lock:
            replies: list[str | None] = [reply] if times is None else [reply] * times + [None]
            self._handler.recipient_replies[address] = replies

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[EmailMessage]:
        with self._handler.lock:
            return list(self._handler.messages)

    @property
    def envelopes(self) -> list[tuple[str, list[str], bool]]:
        """(MAIL FROM, RCPT TOs, SMTPUTF8 asked) of each accepted message."""
        with self._handler.lock:
            return list(self._handler.envelopes)

    @property
    def login_tries(self) -> list[tuple[str, bool]]:
        """(user, over TLS) of each AUTH the server saw."""
        with self._handler.lock:
            return list(self._handler.login_tries)

    def start(self) -> SMTPServer:
        if self._stopped:  # a controller's event loop is closed once stopped: a new one
            self._controller = self._new_controller()
        self._controller.start()
        self._stopped = False
        return self

    def stop(self) -> None:
        self._controller.stop()
        self._stopped = True

    def __enter__(self) -> SMTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key: (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "proctorq test mail server")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes = b""
    at: float = field(default_factory=time.time)  # when it arrived


@dataclass
class HTTPEndpoint:
    """A real HTTP server answering POSTs from a script of (status, headers) answers."""

    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                if endpoint.delay:
                    time.sleep(endpoint.delay)
                status, headers = endpoint.answers.pop(0) if endpoint.answers else (200, {})
                endpoint.received.append(
                    Received(self.path, dict(self.headers.items()), json.loads(raw or b"null"), raw)
                )
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                payload = json.dumps({"status": status}).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            allow_reuse_address = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that hung up (a worker stopped mid-request) is not news

        self._handler = Handler
        self._server_class = Server
        self._server: ThreadingHTTPServer | None = Server(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/credit"

    def __enter__(self) -> HTTPEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def down(self) -> None:
        """Stop answering: connections to its port are refused until ``up``."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def up(self) -> None:
        """Answer again, on the same port."""
        if self._server is None:
            self._server = self._server_class(("127.0.0.1", self.port), self._handler)
            self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
            self._thread.start()
