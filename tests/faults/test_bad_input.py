"""A corpus of bad requests over every route: none is a 5xx, each is a sentence, none is kept.

After a setup phase (users, courses, exams, attempts, a transition with an Idempotency-Key,
a review and a "ready" notice, each with a webhook id), the corpus is sent: for every route,
missing and bad credentials (no token, other schemes, garbage, expired, alg "none", another
key, another algorithm, claims of the wrong type, NUL and lone surrogates in claims); bad path
and query values (negative, zero, huge, non-numeric, NUL, too long, unknown ids); bad bodies
(missing fields, wrong types, null, unknown enum values, extra fields, NUL, lone surrogates,
huge numbers, too long text, not JSON, not UTF-8, nested too deep, the wrong content type,
over the size limit whether declared or streamed); other learners' and other courses'
resources; for vendors, unknown providers, missing or bad signatures, other vendors' secrets,
stale and future timestamps, too long webhook ids, other vendors' attempts; and replays: the
same Idempotency-Key or webhook-id with the same request (which must get the first answer
again) or with another one (the first answer, or a 409). Methods that a path does not serve
are a 405 with an Allow header.

Each request must get the status it expects, never a 5xx; every answer but a replay's is JSON
with a non-empty `detail` sentence, and a replay's is the first answer again. The database is
compared, table by table (row counts and a sha256 over every row), before and after each
request, and the broker's queues likewise: nothing may change. Last, a control phase sends each
route's request unspoiled and checks it is accepted, so the rejections were the corpus' doing.

Run with ``-s`` for a count of answers by status code.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import itertools
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.app import create_app
from api.routing import known_users
from config import get_settings, load_settings
from proctoring.db import UnitOfWork, make_engine, make_session_factory
from proctoring.schema import upgrade
from tests.support.api import World
from tests.support.databases import REDIS_URL, create_postgres_database, drop_postgres_database
from tests.support.environment import JWT_SECRET, webhook_secret
from tests.support.tokens import bearer, token
from workers.app import create_app as create_celery
from workers.publisher import CeleryPublisher

pytestmark = [
    pytest.mark.integration,
    # "another algorithm" signs with the right key under HS512, for which it is short.
    pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),
]

LIMIT = get_settings().max_body_bytes
JSON = {"content-type": "application/json"}
BAD_INTS = [
    *("-1", "0", "abc", "1.5", "0x10", str(2**63), "1" + "0" * 30, "%00", "1%00"),
    # Digits to str.isdigit() but not ASCII (superscript, circled, Arabic-Indic, fullwidth),
    # more digits than int() reads, and forms pydantic would read as an integer.
    *("²", "①", "٣", "１２", "1" * 5000, "+12", "%2012", "1_2"),
]
ERROR_CODES = {400, 401, 403, 404, 405, 409, 413, 422}


# --- the stack ----------------------------------------------------------------------------------


@dataclass
class Stack:
    client: TestClient
    engine: Engine
    broker: redis.Redis


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """The real app on a database of its own, publishing to Redis (no worker runs)."""
    url = create_postgres_database()
    engine = make_engine(url)
    upgrade(engine)
    broker_url = REDIS_URL.rsplit("/", 1)[0] + f"/{1 + (os.getpid() + 3) % 15}"
    broker = redis.Redis.from_url(broker_url)
    broker.flushdb()
    settings = load_settings(database_url=url, broker_url=broker_url, _env_file=None)
    celery = create_celery(settings, current=False)
    uow = UnitOfWork(make_session_factory(engine), CeleryPublisher(celery, pause_seconds=0))
    known_users.forget()
    app = create_app(get_settings(), uow=uow, celery=celery)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield Stack(client, engine, broker)
    finally:
        engine.dispose()
        drop_postgres_database(url)
        broker.flushdb()


def database_state(engine: Engine) -> dict[str, tuple[int, str]]:
    """Every table of the schema: its row count and a sha256 over its sorted rows."""
    state: dict[str, tuple[int, str]] = {}
    with engine.connect() as connection:
        tables = connection.scalars(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
        ).all()
        for table in tables:
            rows = sorted(
                repr(tuple(row)) for row in connection.execute(text(f'SELECT * FROM "{table}"'))
            )
            digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()
            state[table] = (len(rows), digest)
    return state


def broker_state(broker: redis.Redis) -> dict[bytes, int]:
    """Messages waiting per queue (and the other keys, by name)."""
    state: dict[bytes, int] = {}
    for key in broker.scan_iter():
        state[key] = broker.llen(key) if broker.type(key) == b"list" else -1
    return state


# --- credentials --------------------------------------------------------------------------------


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


# --- the corpus ---------------------------------------------------------------------------------


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


@dataclass
class Setup:
    world: World
    admin: int
    rival: int  # staff of another course
    learner3: int
    newcomer: int
    course2: str
    content: str
    exam2: int
    exam3: int
    inactive: int
    attempt: dict[str, Any]  # the learner's, on world.exam
    others: dict[str, Any]  # the other learner's, on world.exam
    second: dict[str, Any]  # the learner's, on exam3
    doomed: dict[str, Any]
    archived: dict[str, Any]
    staff2: int
    vendor: dict[str, Any]  # acme
    vendor2: dict[str, Any]  # acme
    cleanview: dict[str, Any]
    key: str
    transition: tuple[int, Any]
    review: tuple[int, Any]
    review_raw: bytes
    review_id: str
    ready: tuple[int, Any]
    ready_id: str


def set_up(client: TestClient) -> Setup:
    world = World(client)
    ok = world.ok
    admin = world.admin
    as_admin = bearer(admin, staff=True)
    rival, learner3, staff2 = new_ids(3)
    newcomer = next_id()
    course2 = f"course-v1:proctorq+FAULTS{next_id()}+2026"
    for user in (rival, learner3, staff2):
        ok(
            client.put(
                f"/v1/users/{user}",
                headers=as_admin,
                json={"username": f"user{user}", "email": f"user{user}@example.test"},
            )
        )
    ok(client.put(f"/v1/courses/{course2}/staff/{rival}", headers=as_admin))
    ok(client.put(f"/v1/courses/{world.course}/staff/{staff2}", headers=as_admin))
    exam2, exam3 = world.new_exam(), world.new_exam()
    inactive = world.new_exam(is_active=False)
    content = ok(client.get(f"/v1/exams/{world.exam}", headers=bearer(world.learner)))["content_id"]
    attempt = world.new_attempt()
    others = world.new_attempt(user=world.other)
    second = world.new_attempt(exam=exam3)
    doomed = world.new_attempt(user=learner3)
    archived = world.new_attempt(exam=world.new_exam())
    client.delete(f"/v1/attempts/{archived['attempt_id']}", headers=bearer(world.staff))
    acme = world.new_exam(provider="acme")
    vendor = world.new_attempt(exam=acme, external_id=f"fx-acme-{uuid.uuid4().hex}")
    vendor2 = world.new_attempt(
        user=world.other, exam=acme, external_id=f"fx-acme-{uuid.uuid4().hex}"
    )
    cleanview = world.new_attempt(
        exam=world.new_exam(provider="cleanview"), external_id=f"fx-cv-{uuid.uuid4().hex}"
    )
    key = f"fx-key-{uuid.uuid4().hex}"
    first = client.post(
        f"/v1/attempts/{attempt['attempt_id']}/transitions",
        json={"to_status": "started"},
        headers={**bearer(world.learner), "Idempotency-Key": key},
    )
    assert first.status_code == 202, first.text
    review_raw = json.dumps({"attempt_code": vendor["attempt_code"], "status": "passed"}).encode()
    review_id = f"msg_{uuid.uuid4().hex}"
    review = client.post(
        "/v1/providers/acme/reviews",
        content=review_raw,
        headers=webhook("acme", review_raw, webhook_id=review_id),
    )
    assert review.status_code == 202, review.text
    ready_id = f"msg_{uuid.uuid4().hex}"
    ready = client.post(
        f"/v1/providers/acme/attempts/{vendor['external_id']}/ready",
        headers=webhook("acme", b"", webhook_id=ready_id),
    )
    assert ready.status_code == 202, ready.text
    return Setup(
        world=world,
        admin=admin,
        rival=rival,
        learner3=learner3,
        newcomer=newcomer,
        course2=course2,
        content=content,
        exam2=exam2,
        exam3=exam3,
        inactive=inactive,
        attempt=attempt,
        others=others,
        second=second,
        doomed=doomed,
        archived=archived,
        staff2=staff2,
        vendor=vendor,
        vendor2=vendor2,
        cleanview=cleanview,
        key=key,
        transition=(first.status_code, first.json()),
        review=(review.status_code, review.json()),
        review_raw=review_raw,
        review_id=review_id,
        ready=(ready.status_code, ready.json()),
        ready_id=ready_id,
    )


_ids = itertools.count(1)


def next_id() -> int:
    return 70_000_000 + os.getpid() % 1000 * 10_000 + next(_ids)


def new_ids(n: int) -> list[int]:
    return [next_id() for _ in range(n)]


def routes(s: Setup) -> dict[str, Route]:
    """One accepted request per route; staff-only ones as global staff, so that a spoiled body
    is refused for what it is (the course staff rule has probes of its own)."""
    w = s.world
    attempt = s.attempt["attempt_id"]
    transition = s.transition[1]["transition_id"]
    text_wrong = [123, None, [], {}, "", "a\x00b", "\ud800", "x" * 256]
    bool_wrong = ["maybe", 2, [], {}, None]
    found = {
        "create exam": Route(
            "POST",
            "/v1/exams",
            s.admin,
            {
                "course_id": w.course,
                "content_id": f"fx-content-{uuid.uuid4().hex}",
                "exam_name": "Added",
                "time_limit_mins": 30,
            },
            wrong={
                "course_id": text_wrong,
                "content_id": text_wrong,
                "exam_name": text_wrong,
                "time_limit_mins": ["abc", -1, 100_001, 1.5, 2**64, None, []],
                "due_date": ["tomorrow", "2026-12-20T23:59:00", [], ""],
                "is_proctored": bool_wrong,
                "provider": ["nobody", 5, "a\x00b"],
            },
            required=("course_id", "content_id", "exam_name", "time_limit_mins"),
        ),
        "change exam": Route(
            "PATCH",
            f"/v1/exams/{w.exam}",
            s.admin,
            {"exam_name": "Renamed", "time_limit_mins": 45},
            wrong={
                "exam_name": text_wrong,
                "time_limit_mins": ["abc", -1, 1.5, 10**30, None],
                "is_active": bool_wrong,
                "is_practice_exam": [None, "maybe"],
                "is_proctored": [None, []],
                "due_date": ["not a date", "2026-12-20T23:59:00"],
                "provider": ["nobody", ""],
            },
        ),
        "read exam": Route("GET", f"/v1/exams/{w.exam}", w.learner),
        "list exams": Route("GET", f"/v1/courses/{w.course}/exams", w.learner),
        "exam by content": Route("GET", f"/v1/courses/{w.course}/exams/{s.content}", w.learner),
        "name course": Route(
            "PUT",
            f"/v1/courses/{w.course}",
            s.admin,
            {"name": "Renamed course", "contact_url": "https://example.test/contact"},
            wrong={
                "name": text_wrong[:1] + text_wrong[4:],
                "contact_url": [5, "a\x00b", "x" * 501],
            },
        ),
        "grant staff": Route("PUT", f"/v1/courses/{w.course}/staff/{w.other}", s.admin),
        "revoke staff": Route("DELETE", f"/v1/courses/{w.course}/staff/{s.staff2}", s.admin),
        "create attempt": Route(
            "POST",
            f"/v1/exams/{s.exam2}/attempts",
            s.admin,
            {"user_id": s.learner3, "taking_as_proctored": True, "external_id": "fx-session"},
            wrong={
                "user_id": ["abc", 0, -5, 2**63, 1.5, []],
                "taking_as_proctored": bool_wrong[:4],
                "external_id": [5, "", "a\x00b", "x" * 256],
            },
        ),
        "read attempt": Route("GET", f"/v1/attempts/{attempt}", w.learner),
        "archive attempt": Route("DELETE", f"/v1/attempts/{s.doomed['attempt_id']}", s.admin),
        "post transition": Route(
            "POST",
            f"/v1/attempts/{attempt}/transitions",
            w.learner,
            {"to_status": "ready_to_submit"},
            wrong={
                "to_status": ["flying", "STARTED", "", 5, None, ["started"], "started\x00"],
                "acting_for_learner": ["maybe", 2, []],
            },
            required=("to_status",),
        ),
        "list transitions": Route("GET", f"/v1/attempts/{attempt}/transitions", w.learner),
        "read transition": Route("GET", f"/v1/transitions/{transition}", w.learner),
        "put user": Route(
            "PUT",
            f"/v1/users/{s.newcomer}",
            s.admin,
            {"username": "newcomer", "email": "newcomer@example.test"},
            wrong={
                "username": text_wrong[:2] + text_wrong[4:7] + ["x" * 151],
                "email": ["not-an-email", "a b@c", 5, "a\x00@b.c", "x" * 250 + "@b.cd"],
                "is_staff": ["maybe", []],
            },
            required=("username", "email"),
        ),
        "read credit": Route("GET", f"/v1/users/{w.learner}/credit", w.learner),
        "post review": Route(
            "POST",
            "/v1/providers/acme/reviews",
            None,
            {"attempt_code": s.vendor2["attempt_code"], "status": "violation"},
            wrong={
                "attempt_code": [5, "", "a\x00b", "x" * 65, []],
                "status": ["flying", "Clean", "", 5, None, "passed\x00"],
                "reviewed_by": [5, "", "x" * 256],
                "comments": [5, None, "x" * 20_001],
            },
            required=("status",),
            strict=False,
        ),
        "vendor ready": Route(
            "POST", f"/v1/providers/acme/attempts/{s.vendor2['external_id']}/ready", None
        ),
    }
    for route in found.values():
        route.staff = route.caller == s.admin
    return found


def build(s: Setup) -> Corpus:
    c = Corpus()
    w = s.world
    all_routes = routes(s)
    user_routes = {name: r for name, r in all_routes.items() if r.caller is not None}
    vendor_routes = {name: r for name, r in all_routes.items() if r.caller is None}

    # 1. Credentials: every user route, with each bad Authorization header.
    for name, route in user_routes.items():
        for label, headers in bad_credentials(route.caller or 0):
            raw = route.raw()
            content_headers = JSON if route.body is not None else {}
            c.add(
                f"{name}: {label}",
                route.method,
                route.path,
                401,
                {**headers, **content_headers},
                raw,
            )

    # 2. Bodies: each field wrong, each required field missing, extra fields, and bodies that
    # are not JSON objects at all, not UTF-8, too deep or too big.
    for name, route in all_routes.items():
        if route.body is None:
            continue
        for field_name, values in route.wrong.items():
            for value in values:
                c.body(
                    route, f"{name}: {field_name}={value!r:.40}", {**route.body, field_name: value}
                )
        for field_name in route.required:
            body = {k: v for k, v in route.body.items() if k != field_name}
            c.body(route, f"{name}: no {field_name}", body)
        if route.strict:
            c.body(route, f"{name}: an extra field", {**route.body, "is_admin": True})
        for label, raw, expect in [
            ("not JSON", b"{not json", 422),
            ("truncated JSON", route.raw()[:-3], 422),
            ("empty body", b"", 422),
            ("null", b"null", 422),
            ("a list", b"[]", 422),
            ("a number", b"12", 422),
            ("a string", b'"body"', 422),
            ("not UTF-8", route.raw().replace(b'"', b'"\xff', 1), {400, 401}),
            ("latin-1", '{"x": "é"}'.encode("latin-1"), {400, 401}),
            ("nested too deep", b"[" * 100_000 + b"]" * 100_000, {400, 413, 422}),
            ("unclosed nesting", b'{"a": ' + b"[" * 50_000, {400, 422}),
            ("a huge number", b'{"x": 1' + b"0" * 5000 + b"}", {400, 422}),
            ("NaN", b'{"x": NaN}', 422),
            ("duplicate key", b'{"to_status": "started", "to_status": 5}', 422),
        ]:
            c.raw(route, f"{name}: {label}", raw, expect)
        c.raw(route, f"{name}: text/plain", route.raw(), 422, **{"content-type": "text/plain"})
        c.raw(
            route,
            f"{name}: form",
            b"a=1&b=2",
            422,
            **{"content-type": "application/x-www-form-urlencoded"},
        )
        if route.caller is not None:
            c.raw(route, f"{name}: no content type", route.raw(), 422, **{"content-type": ""})
    for name, route in all_routes.items():
        if route.method == "GET":
            continue
        padded = route.raw() + b" " * (LIMIT + 1 - len(route.raw()))
        c.raw(route, f"{name}: body over the limit", padded, 413)

        def stream(size: int = LIMIT + 1) -> Iterator[bytes]:
            for _ in range(size // 65536 + 1):
                yield b" " * 65536

        c.add(
            f"{name}: streamed over the limit",
            route.method,
            route.path,
            413,
            route.headers(),
            stream,
        )

    # 3. Paths and queries: bad ids, too long or NUL text, unknown resources.
    learner = bearer(w.learner)
    admin = bearer(s.admin, staff=True)
    staff = bearer(w.staff)
    id_paths = [
        ("GET", "/v1/exams/{}", learner, 422, 404),
        ("PATCH", "/v1/exams/{}", staff, 422, 404),
        ("POST", "/v1/exams/{}/attempts", learner, 422, 404),
        ("GET", "/v1/attempts/{}", learner, 422, 404),
        ("DELETE", "/v1/attempts/{}", staff, 422, 404),
        ("POST", "/v1/attempts/{}/transitions", learner, 422, 404),
        ("GET", "/v1/attempts/{}/transitions", learner, 422, 404),
        ("GET", "/v1/transitions/{}", learner, 422, 404),
        ("PUT", "/v1/courses/" + w.course + "/staff/{}", admin, 422, None),
        ("DELETE", "/v1/courses/" + w.course + "/staff/{}", admin, 422, None),
        ("PUT", "/v1/users/{}", admin, 422, None),
        ("GET", "/v1/users/{}/credit", learner, 422, None),
    ]
    bodies = {
        "PATCH": {"exam_name": "x"},
        "POST": {"to_status": "started"},
        "PUT": {"username": "u", "email": "u@example.test"},
    }
    for method, template, headers, bad, unknown in id_paths:
        body = bodies.get(method) if "staff" not in template else None
        raw = b"" if body is None else json.dumps(body).encode()
        with_body = {**headers, **(JSON if body is not None else {})}
        for value in BAD_INTS:
            expect = {bad, 403} if template.startswith("/v1/users/{}/credit") else bad
            shown = value if len(value) < 40 else f"of {len(value)} digits"
            c.add(
                f"{method} {template}: id {shown}",
                method,
                template.format(value),
                expect,
                with_body,
                raw,
            )
        if unknown is not None:
            c.add(
                f"{method} {template}: unknown id",
                method,
                template.format(987_654_321),
                unknown,
                with_body,
                raw,
            )
    for label, url, expect in [
        ("unknown exam", "/v1/exams/2000000000", 404),
        ("unknown content", f"/v1/courses/{w.course}/exams/fx-nothing", 404),
        ("NUL in content id", f"/v1/courses/{w.course}/exams/a%00b", 422),
        ("too long content id", f"/v1/courses/{w.course}/exams/{'x' * 256}", 422),
        ("NUL in course id", "/v1/courses/a%00b/exams", 422),
        ("too long course id", f"/v1/courses/{'x' * 256}/exams", 422),
        ("active_only not a boolean", f"/v1/courses/{w.course}/exams?active_only=maybe", 422),
        ("practice not a boolean", f"/v1/courses/{w.course}/exams?practice=2", 422),
        ("archived attempt", f"/v1/attempts/{s.archived['attempt_id']}", 404),
        ("wait over 30", f"/v1/transitions/{s.transition[1]['transition_id']}?wait=31", 422),
        ("negative wait", f"/v1/transitions/{s.transition[1]['transition_id']}?wait=-1", 422),
        ("wait not a number", f"/v1/transitions/{s.transition[1]['transition_id']}?wait=abc", 422),
        ("wait nan", f"/v1/transitions/{s.transition[1]['transition_id']}?wait=nan", 422),
        ("wait inf", f"/v1/transitions/{s.transition[1]['transition_id']}?wait=inf", 422),
        ("empty course_id", f"/v1/users/{w.learner}/credit?course_id=", 422),
        ("NUL course_id", f"/v1/users/{w.learner}/credit?course_id=a%00b", 422),
        ("unknown route", "/v1/nothing", 404),
        ("unknown version", "/v2/exams/1", 404),
    ]:
        c.add(f"GET {label}", "GET", url, expect, learner)
    archived = s.archived["attempt_id"]
    c.add(
        "transition to an archived attempt",
        "POST",
        f"/v1/attempts/{archived}/transitions",
        404,
        {**learner, **JSON},
        b'{"to_status": "started"}',
    )
    c.add("archive an archived attempt", "DELETE", f"/v1/attempts/{archived}", 404, staff)
    c.add(
        "attempt at an inactive exam",
        "POST",
        f"/v1/exams/{s.inactive}/attempts",
        422,
        {**learner, **JSON},
        b"{}",
    )
    c.add(
        "a second attempt", "POST", f"/v1/exams/{w.exam}/attempts", 409, {**learner, **JSON}, b"{}"
    )
    c.add(
        "attempt for an unknown user",
        "POST",
        f"/v1/exams/{s.exam2}/attempts",
        404,
        {**admin, **JSON},
        json.dumps({"user_id": 987_654_321}).encode(),
    )
    existing = {
        "course_id": w.course,
        "content_id": s.content,
        "exam_name": "Twice",
        "time_limit_mins": 5,
    }
    c.add(
        "a second exam for the same content",
        "POST",
        "/v1/exams",
        409,
        {**admin, **JSON},
        json.dumps(existing).encode(),
    )
    c.add(
        "an exam for an unknown exam_id's course",
        "POST",
        "/v1/exams",
        404,
        {**staff, **JSON},
        json.dumps({"exam_id": 2_000_000_000, "content_id": "x"}).encode(),
    )
    c.add(
        "change to an unknown provider",
        "PATCH",
        f"/v1/exams/{w.exam}",
        422,
        {**staff, **JSON},
        b'{"provider": "nobody"}',
    )
    c.add(
        "Content-Length not a number",
        "PUT",
        f"/v1/courses/{w.course}",
        400,
        {**admin, **JSON, "content-length": "abc"},
        b'{"name": "x"}',
    )

    # 4. Who may act: other learners, other courses' staff, learners acting as staff.
    attempt, others = s.attempt["attempt_id"], s.others["attempt_id"]
    for method, url, body in [
        ("GET", f"/v1/attempts/{others}", None),
        ("GET", f"/v1/attempts/{others}/transitions", None),
        ("POST", f"/v1/attempts/{others}/transitions", {"to_status": "declined"}),
        ("POST", f"/v1/attempts/{others}/transitions", {"to_status": "declined", "x": 1}),
        ("DELETE", f"/v1/attempts/{others}", None),
    ]:
        raw = None if body is None else json.dumps(body).encode()
        headers = {**bearer(w.learner), **(JSON if body is not None else {})}
        c.add(f"a learner: {method} {url} {body or ''}", method, url, 403, headers, raw)
    doomed = s.doomed["attempt_id"]
    transition = s.transition[1]["transition_id"]
    other = bearer(w.other)
    rival = bearer(s.rival)
    for who, headers in (("another learner", other), ("another course's staff", rival)):
        for method, url, body in [
            ("GET", f"/v1/attempts/{attempt}", None),
            ("GET", f"/v1/attempts/{attempt}/transitions", None),
            ("POST", f"/v1/attempts/{attempt}/transitions", {"to_status": "submitted"}),
            ("POST", f"/v1/attempts/{attempt}/transitions", {"to_status": "verified"}),
            ("POST", f"/v1/attempts/{attempt}/transitions", {"to_status": 5, "bad": []}),
            (
                "POST",
                f"/v1/attempts/{attempt}/transitions",
                {"to_status": "started", "acting_for_learner": True},
            ),
            ("GET", f"/v1/transitions/{transition}", None),
            ("GET", f"/v1/transitions/{transition}?wait=99", None),
            ("DELETE", f"/v1/attempts/{doomed}", None),
            ("PATCH", f"/v1/exams/{w.exam}", {"is_active": False}),
            ("PATCH", f"/v1/exams/{w.exam}", {"time_limit_mins": "not even valid"}),
            ("POST", "/v1/exams", {**existing, "content_id": "fx-not-yours"}),
            ("POST", "/v1/exams", {"exam_id": w.exam, "content_id": "fx-not-yours"}),
            ("POST", f"/v1/exams/{w.exam}/attempts", {"user_id": w.learner}),
            ("PUT", f"/v1/courses/{w.course}", {"name": "Mine now"}),
            ("PUT", f"/v1/courses/{w.course}", {"name": 5}),
            ("PUT", f"/v1/courses/{w.course}/staff/{s.rival}", None),
            ("DELETE", f"/v1/courses/{w.course}/staff/{w.staff}", None),
            ("PUT", f"/v1/users/{w.learner}", {"username": "taken", "email": "t@example.test"}),
            (
                "PUT",
                f"/v1/users/{w.learner}",
                {"username": "taken", "email": "t@example.test", "is_staff": True},
            ),
            ("GET", f"/v1/users/{w.learner}/credit", None),
            ("GET", f"/v1/users/{w.learner}/credit?course_id={w.course}", None),
        ]:
            raw = None if body is None else json.dumps(body).encode()
            all_headers = {**headers, **(JSON if body is not None else {})}
            c.add(f"{who}: {method} {url} {body or ''}", method, url, 403, all_headers, raw)
    learner_as_staff = [
        ("PATCH", f"/v1/exams/{w.exam}", {"exam_name": "Mine"}),
        ("POST", "/v1/exams", {**existing, "content_id": "fx-learner"}),
        (
            "POST",
            "/v1/exams",
            {"content_id": "fx-no-course", "exam_name": "x", "time_limit_mins": 1},
        ),
        (
            "POST",
            "/v1/exams",
            {"course_id": "a\x00b", "content_id": "x", "exam_name": "x", "time_limit_mins": 1},
        ),
        (
            "POST",
            "/v1/exams",
            {"course_id": "\ud800", "content_id": "x", "exam_name": "x", "time_limit_mins": 1},
        ),
        (
            "POST",
            "/v1/exams",
            {"course_id": 5, "content_id": "x", "exam_name": "x", "time_limit_mins": 1},
        ),
        ("POST", "/v1/exams", {"exam_id": "1", "content_id": "x"}),
        ("POST", "/v1/exams", {"exam_id": 2**40, "content_id": "x"}),
        ("DELETE", f"/v1/attempts/{attempt}", None),
        ("POST", f"/v1/exams/{w.exam}/attempts", {"user_id": w.other}),
        ("PUT", f"/v1/courses/{w.course}", {"name": "Mine"}),
        ("PUT", "/v1/courses/a%00b", {"name": "Mine"}),
        ("PUT", f"/v1/courses/{'x' * 300}", {"name": "Mine"}),
        ("PUT", f"/v1/courses/{w.course}/staff/{w.learner}", None),
        (
            "PUT",
            f"/v1/users/{w.learner}",
            {"username": "me", "email": "me@example.test", "is_staff": True},
        ),
        ("GET", f"/v1/users/{w.other}/credit", None),
        ("GET", f"/v1/users/{w.other}/credit?course_id=a%00b", None),
        ("GET", f"/v1/users/{w.other}/credit?course_id=%ED%A0%80", None),
    ]
    for method, url, body in learner_as_staff:
        raw = None if body is None else json.dumps(body).encode()
        all_headers = {**learner, **(JSON if body is not None else {})}
        c.add(
            f"learner as staff: {method} {url:.60} {body or ''}", method, url, 403, all_headers, raw
        )
    for method, url in [
        ("PUT", f"/v1/courses/{w.course}/staff/{w.other}"),
        ("DELETE", f"/v1/courses/{w.course}/staff/{s.staff2}"),
    ]:
        c.add(f"course staff as global staff: {method} {url}", method, url, 403, staff)
    c.add(
        "course staff as the LMS: PUT user",
        "PUT",
        f"/v1/users/{s.newcomer}",
        403,
        {**staff, **JSON},
        b'{"username": "n", "email": "n@example.test"}',
    )

    # 5. Idempotency-Key: the same key again (the first answer), with another request (409),
    # and keys that are not keys.
    url = f"/v1/attempts/{attempt}/transitions"
    keyed = {**learner, **JSON, "Idempotency-Key": s.key}
    c.add(
        "the same key, the same request",
        "POST",
        url,
        200,
        keyed,
        b'{"to_status": "started"}',
        first=(200, s.transition[1]),
    )
    c.add(
        "the same key, again",
        "POST",
        url,
        200,
        keyed,
        b'{"to_status":"started"}',
        first=(200, s.transition[1]),
    )
    c.add("the same key, another status", "POST", url, 409, keyed, b'{"to_status": "submitted"}')
    c.add(
        "the same key, another attempt",
        "POST",
        f"/v1/attempts/{s.second['attempt_id']}/transitions",
        409,
        keyed,
        b'{"to_status": "started"}',
    )
    c.add("the same key, declined instead", "POST", url, 409, keyed, b'{"to_status": "declined"}')
    for label, key in [
        ("empty key", ""),
        ("key too long", "k" * 201),
        ("key with a space", "a key"),
        ("key with a tab", "a\tkey"),
        ("key not ASCII", "clé".encode()),
    ]:
        c.add(
            f"Idempotency-Key: {label}",
            "POST",
            url,
            422,
            {**learner, **JSON, "Idempotency-Key": key},
            b'{"to_status": "ready_to_submit"}',
        )

    # 6. Vendors: providers, signatures, timestamps, other vendors' attempts, replays.
    review = all_routes["post review"]
    ready = all_routes["vendor ready"]
    now = time.time()
    for name, route in vendor_routes.items():
        raw = route.raw()
        path, provider_path = route.path, route.path.replace("/acme/", "/{}/")
        for label, provider in [
            ("unknown provider", "nobody"),
            ("provider in capitals", "ACME"),
            ("NUL in provider", "ac%00me"),
            ("too long provider", "p" * 300),
        ]:
            c.add(
                f"{name}: {label}",
                "POST",
                provider_path.format(provider),
                404,
                webhook("acme", raw),
                raw,
            )
        signed = webhook("acme", raw)
        for missing in ("webhook-id", "webhook-timestamp", "webhook-signature"):
            headers = {k: v for k, v in signed.items() if k != missing}
            c.add(f"{name}: no {missing}", "POST", path, 401, headers, raw)
        for label, headers in [
            ("another vendor's secret", webhook("acme", raw, secret=webhook_secret("cleanview"))),
            ("a made-up secret", webhook("acme", raw, secret=webhook_secret("mallory"))),
            ("an old timestamp", webhook("acme", raw, at=now - 600)),
            ("a future timestamp", webhook("acme", raw, at=now + 600)),
            ("signed over another body", webhook("acme", raw + b" ")),
            ("a timestamp that is not a number", {**signed, "webhook-timestamp": "soon"}),
            ("an empty signature", {**signed, "webhook-signature": ""}),
            ("a garbage signature", {**signed, "webhook-signature": "v1,bm90IGEgc2lnbmF0dXJl"}),
            ("signature not base64", {**signed, "webhook-signature": "v1,***"}),
            (
                "signature of another version",
                {**signed, "webhook-signature": "v2" + signed["webhook-signature"][2:]},
            ),
            (
                "signature without a version",
                {**signed, "webhook-signature": signed["webhook-signature"][3:]},
            ),
            ("a long webhook-id", webhook("acme", raw, webhook_id="m" * 256)),
            ("NUL in webhook-id", webhook("acme", raw, webhook_id="msg\x00id")),
            ("a bearer token instead", {**admin, **JSON}),
        ]:
            c.add(f"{name}: {label}", "POST", path, 401, headers, raw)
        c.add(
            f"{name}: not UTF-8, signed",
            "POST",
            path,
            {400, 401},
            webhook("acme", b"\xff\xfe"),
            b"\xff\xfe",
        )
    for label, target, expect in [
        ("unknown external_id", "fx-nothing", 404),
        ("another vendor's attempt", s.cleanview["external_id"], 404),
        ("NUL in external_id", "fx%00x", 422),
        ("too long external_id", "e" * 256, 422),
    ]:
        url = f"/v1/providers/acme/attempts/{target}/ready"
        c.add(f"vendor ready: {label}", "POST", url, expect, webhook("acme", b""), b"")
    url = f"/v1/providers/cleanview/attempts/{s.vendor['external_id']}/ready"
    c.add(
        "vendor ready: cleanview for acme's attempt",
        "POST",
        url,
        404,
        webhook("cleanview", b""),
        b"",
    )
    for label, payload, provider, expect in [
        ("unknown attempt_code", {"attempt_code": "nothing", "status": "passed"}, "acme", 404),
        ("unknown external_id", {"external_id": "nothing", "status": "passed"}, "acme", 404),
        (
            "another vendor's attempt",
            {"attempt_code": s.cleanview["attempt_code"], "status": "passed"},
            "acme",
            404,
        ),
        (
            "acme's attempt, as cleanview",
            {"attempt_code": s.vendor2["attempt_code"], "status": "Clean"},
            "cleanview",
            404,
        ),
        (
            "cleanview's word for acme",
            {"attempt_code": s.vendor2["attempt_code"], "status": "Clean"},
            "acme",
            422,
        ),
        (
            "acme's word for cleanview",
            {"external_id": s.cleanview["external_id"], "status": "passed"},
            "cleanview",
            422,
        ),
        ("no attempt named", {"status": "passed"}, "acme", 422),
        ("both null", {"attempt_code": None, "external_id": None, "status": "passed"}, "acme", 422),
        (
            "extra fields, unknown attempt",
            {"attempt_code": "nothing", "status": "passed", "x": 1},
            "acme",
            404,
        ),
    ]:
        raw = json.dumps(payload).encode()
        c.add(
            f"post review: {label}",
            "POST",
            f"/v1/providers/{provider}/reviews",
            expect,
            webhook(provider, raw),
            raw,
        )
    replayed = webhook("acme", s.review_raw, webhook_id=s.review_id)
    c.add(
        "review: the same webhook, again",
        "POST",
        review.path,
        202,
        replayed,
        s.review_raw,
        first=s.review,
    )
    for label, payload in [
        ("another status", {"attempt_code": s.vendor["attempt_code"], "status": "violation"}),
        ("another attempt", {"attempt_code": s.vendor2["attempt_code"], "status": "passed"}),
        ("a body that is not valid", {"status": 5}),
    ]:
        raw = json.dumps(payload).encode()
        headers = webhook("acme", raw, webhook_id=s.review_id)
        c.add(
            f"review: the same webhook-id, {label}",
            "POST",
            review.path,
            {202, 422},
            headers,
            raw,
            first=s.review,
        )
    stale = webhook("acme", s.review_raw, webhook_id=s.review_id, at=now - 3600)
    c.add("review: the same webhook, an hour late", "POST", review.path, 401, stale, s.review_raw)
    ready_url = f"/v1/providers/acme/attempts/{s.vendor['external_id']}/ready"
    c.add(
        "ready: the same webhook, again",
        "POST",
        ready_url,
        202,
        webhook("acme", b"", webhook_id=s.ready_id),
        b"",
        first=s.ready,
    )
    c.add(
        "ready: the same webhook-id, another attempt (one id, one message: the first answer)",
        "POST",
        ready.path,
        202,
        webhook("acme", b"", webhook_id=s.ready_id),
        b"",
        first=s.ready,
    )
    c.add(
        "ready: the same webhook-id, as another vendor",
        "POST",
        ready_url.replace("acme", "cleanview"),
        404,
        webhook("cleanview", b"", webhook_id=s.ready_id),
        b"",
    )

    # 7. Methods a path does not serve.
    for method, url in [
        ("PUT", "/v1/exams"),
        ("DELETE", "/v1/exams"),
        ("PUT", f"/v1/exams/{w.exam}"),
        ("DELETE", f"/v1/exams/{w.exam}"),
        ("POST", f"/v1/courses/{w.course}/exams"),
        ("GET", f"/v1/courses/{w.course}"),
        ("DELETE", f"/v1/courses/{w.course}"),
        ("GET", f"/v1/courses/{w.course}/staff/{w.staff}"),
        ("GET", f"/v1/exams/{w.exam}/attempts"),
        ("PATCH", f"/v1/attempts/{attempt}"),
        ("PUT", f"/v1/attempts/{attempt}/transitions"),
        ("DELETE", f"/v1/transitions/{transition}"),
        ("GET", "/v1/providers/acme/reviews"),
        ("PUT", ready_url),
        ("DELETE", f"/v1/users/{w.learner}"),
        ("POST", f"/v1/users/{w.learner}/credit"),
        ("POST", "/healthz"),
        ("DELETE", "/readyz"),
        ("OPTIONS", f"/v1/attempts/{attempt}"),
        ("TRACE", "/v1/exams"),
    ]:
        c.add(f"{method} {url}", method, url, 405, {**admin, **JSON}, b'{"to_status": "started"}')
    return c


# --- the run ------------------------------------------------------------------------------------


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


def test_bad_input_is_refused_with_a_sentence_and_changes_nothing(stack: Stack) -> None:
    client = stack.client
    setup = set_up(client)
    corpus = build(setup)
    assert len(corpus.probes) >= 200
    assert all(p.expect <= ERROR_CODES | {200, 202} for p in corpus.probes)

    before_db, before_broker = database_state(stack.engine), broker_state(stack.broker)
    assert {"users", "courses", "exams", "attempts", "transitions", "reviews"} <= set(before_db)
    assert all(
        before_db[t][0] > 0 for t in ("users", "exams", "attempts", "transitions", "reviews")
    )
    assert before_broker, "the setup published its transitions"
    state = before_db
    outcomes: list[Outcome] = []
    changed: list[str] = []
    started = time.monotonic()
    for probe in corpus.probes:
        outcomes.append(send(client, probe))
        now = database_state(stack.engine)
        if now != state:
            tables = sorted(t for t in now if now[t] != state.get(t))
            changed.append(f"{probe.label}: changed {', '.join(tables)}")
            state = now
    elapsed = time.monotonic() - started
    after_db, after_broker = database_state(stack.engine), broker_state(stack.broker)

    by_status = Counter(o.status for o in outcomes)
    print(
        f"\n{len(outcomes)} bad requests in {elapsed:.1f}s, by status: "
        + ", ".join(f"{code}: {count}" for code, count in sorted(by_status.items()))
    )
    failures = [
        f"{o.probe.label} ({o.probe.method} {o.probe.url[:80]}): {'; '.join(o.problems)}"
        for o in outcomes
        if o.problems
    ]
    assert not failures, f"{len(failures)} answers were wrong:\n" + "\n".join(failures)
    assert not changed, "requests changed the database:\n" + "\n".join(changed)
    assert after_db == before_db
    assert after_broker == before_broker, "something was published"
    assert not any(code >= 500 for code in by_status)

    # Control: each route's request, unspoiled, is accepted.
    for name, route in routes(setup).items():
        raw = route.raw()
        response = client.request(route.method, route.path, headers=route.headers(raw), content=raw)
        assert response.status_code < 300, f"{name}: {response.status_code} {response.text}"
