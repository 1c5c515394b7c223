"""Requests and their judging: credentials, a probe (a request and the answers it may get),
a route to spoil, and which route of the API a probe is aimed at."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
from fastapi.testclient import TestClient

from tests.support.environment import JWT_SECRET, webhook_secret
from tests.support.tokens import bearer, token

JSON = {"content-type": "application/json"}
BAD_INTS = [
    *("-1", "0", "abc", "1.5", "0x10", str(2**63), "1" + "0" * 30, "%00", "1%00"),
    # Digits to str.isdigit() but not ASCII (superscript, circled, Arabic-Indic, fullwidth),
    # more digits than int() reads, and forms pydantic would read as an integer.
    *("²", "①", "٣", "１２", "1" * 5000, "+12", "%2012", "1_2"),
]
ERROR_CODES = {400, 401, 403, 404, 405, 409, 413, 422}


# --- credentials ---------------------------------------------------------------------------------


def sign(secret: str, webhook_id: str, timestamp: str, raw: bytes) -> str:
    """Standard Webhooks v1 over any bytes."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + raw, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def webhook(
    provider: str,
    raw: bytes,
    *,
    webhook_id: str | None = None,
    secret: str | None = None,
    at: float | None = None,
) -> dict[str, str]:
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    timestamp = str(int(time.time() if at is None else at))
    signature = sign(secret or webhook_secret(provider), webhook_id, timestamp, raw)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": signature,
        **JSON,
    }


def claims(user_id: Any, **extra: Any) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "preferred_username": f"user{user_id}",
        "email": f"user{user_id}@example.test",
        "administrator": False,
        "exp": dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10),
        **extra,
    }


def signed_claims(payload: dict[str, Any], *, key: str = JWT_SECRET, alg: str = "HS256") -> str:
    return jwt.encode(payload, key, algorithm=alg)


def bad_credentials(user: int) -> list[tuple[str, dict[str, str]]]:
    """Authorization headers that must all be a 401, for a user who may otherwise act."""
    unsigned = jwt.encode(claims(user), None, algorithm="none")  # type: ignore[arg-type]
    valid = token(user)
    tampered = valid[:-4] + ("AAAA" if not valid.endswith("AAAA") else "BBBB")
    header, payload, signature = valid.split(".")
    swapped = json.loads(base64.urlsafe_b64decode(payload + "=="))
    swapped["administrator"] = True
    forged = ".".join(
        [
            header,
            base64.urlsafe_b64encode(json.dumps(swapped).encode()).decode().rstrip("="),
            signature,
        ]
    )
    no_exp = claims(user)
    del no_exp["exp"]
    nul_name = signed_claims(claims(user, preferred_username="a\x00b"))
    surrogate = signed_claims(claims(user, email="\ud800@example.test"))
    variants: list[tuple[str, str | None]] = [
        ("no Authorization header", None),
        ("Basic scheme", "Basic dXNlcjpwYXNzd29yZA=="),
        ("Bearer without a token", "Bearer "),
        ("a bare token", valid),
        ("garbage token", "Bearer not.a.jwt"),
        ("truncated token", f"Bearer {valid[:40]}"),
        ("tampered signature", f"Bearer {tampered}"),
        ("forged payload", f"Bearer {forged}"),
        ("expired token", f"Bearer {token(user, expires_in=-60)}"),
        ("alg none", f"Bearer {unsigned}"),
        ("another key", f"Bearer {token(user, key='another-key-that-is-long-enough-for-hs256')}"),
        ("another algorithm", f"Bearer {signed_claims(claims(user), alg='HS512')}"),
        ("no exp", f"Bearer {signed_claims(no_exp)}"),
        ("user_id a string", f"Bearer {signed_claims(claims(str(user)))}"),
        ("user_id zero", f"Bearer {signed_claims(claims(0))}"),
        ("user_id too big", f"Bearer {signed_claims(claims(2**63))}"),
        ("administrator a string", f"Bearer {signed_claims(claims(user, administrator='true'))}"),
        ("NUL in username", f"Bearer {nul_name}"),
        ("lone surrogate in email", f"Bearer {surrogate}"),
        ("no claims", f"Bearer {signed_claims({'exp': time.time() + 600})}"),
    ]
    return [(label, {} if value is None else {"Authorization": value}) for label, value in variants]


@dataclass
class Probe:
    label: str
    method: str
    url: str
    expect: frozenset[int]
    headers: dict[str, Any] = field(default_factory=dict)
    content: bytes | Callable[[], Iterator[bytes]] | None = None
    # A replay: the first answer, which must be given again.
    first: tuple[int, Any] | None = None


@dataclass
class Route:
    """A request that is accepted as it is (the control phase checks it), to be spoiled."""

    method: str
    path: str
    caller: int | None  # None: a vendor route
    body: dict[str, Any] | None = None
    staff: bool = False  # the caller is global staff
    provider: str = "acme"
    # For body routes: a wrong value per field, and the fields that may not be left out.
    wrong: dict[str, list[Any]] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    strict: bool = True  # unknown fields are refused

    def headers(self, raw: bytes = b"") -> dict[str, str]:
        if self.caller is None:
            return webhook(self.provider, raw)
        credentials = bearer(self.caller, staff=self.staff)
        return {**credentials, **(JSON if self.body is not None else {})}

    def raw(self, body: Any = None) -> bytes:
        if body is None:
            body = self.body
        return b"" if body is None else json.dumps(body).encode()


class Corpus:
    def __init__(self) -> None:
        self.probes: list[Probe] = []

    def add(
        self,
        label: str,
        method: str,
        url: str,
        expect: int | set[int],
        headers: dict[str, Any] | None = None,
        content: bytes | Callable[[], Iterator[bytes]] | None = None,
        first: tuple[int, Any] | None = None,
    ) -> None:
        codes = frozenset({expect} if isinstance(expect, int) else expect)
        self.probes.append(Probe(label, method, url, codes, headers or {}, content, first))

    def body(self, route: Route, label: str, body: Any, expect: int | set[int] = 422) -> None:
        raw = json.dumps(body).encode()
        self.add(label, route.method, route.path, expect, route.headers(raw), raw)

    def raw(
        self, route: Route, label: str, raw: bytes, expect: int | set[int], **extra: str
    ) -> None:
        headers = {**route.headers(raw), **extra}
        self.add(label, route.method, route.path, expect, headers, raw)


# --- sending -------------------------------------------------------------------------------------


@dataclass
class Outcome:
    probe: Probe
    status: int
    problems: list[str]


def send(client: TestClient, probe: Probe) -> Outcome:
    content = probe.content() if callable(probe.content) else probe.content
    response = client.request(probe.method, probe.url, headers=probe.headers, content=content)
    problems = []
    if response.status_code not in probe.expect:
        problems.append(f"expected {sorted(probe.expect)}")
    if response.status_code >= 500:
        problems.append("a server error")
    try:
        answer = response.json()
    except ValueError:
        answer = None
        problems.append("not JSON")
    if not response.headers.get("content-type", "").startswith("application/json"):
        problems.append(f"content-type {response.headers.get('content-type')!r}")
    if 200 <= response.status_code < 300:
        if probe.first is None:
            problems.append("accepted, and not a replay")
        elif answer != probe.first[1]:
            problems.append(
                f"a replay answered {answer!r}, not the first answer {probe.first[1]!r}"
            )
    else:
        detail = answer.get("detail") if isinstance(answer, dict) else None
        if not isinstance(detail, str) or not detail.strip():
            problems.append("no detail sentence")
    if response.status_code == 405 and not response.headers.get("allow"):
        problems.append("a 405 without Allow")
    if problems:
        problems.append(f"answer {response.status_code} {response.text[:300]}")
    return Outcome(probe, response.status_code, problems)


# --- which route a probe is aimed at -------------------------------------------------------------

# The groups of probes that no route of the API serves.
NOT_SERVED = "methods a path does not serve"
NOWHERE = "paths nothing serves"


def aimed_at(probe: Probe, served: dict[str, set[str]]) -> str:
    """``"METHOD /path/{template}"`` of the route the probe's method and path reach (its
    path values as bad as they may be), else NOT_SERVED or NOWHERE. ``served`` is the app's
    paths and the methods of each, as its OpenAPI document lists them."""
    path = probe.url.split("?", 1)[0]
    reached = [t for t in served if re.fullmatch(re.sub(r"\{[^/]+?\}", "[^/]+", t), path)]
    for template in reached:
        if probe.method in served[template]:
            return f"{probe.method} {template}"
    return NOT_SERVED if reached else NOWHERE
