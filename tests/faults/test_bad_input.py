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

The probes aimed at one route are a test of their own, named by the route
(``test_bad_input[POST /v1/exams]``), with two more for the methods a path does not serve and
the paths nothing serves. The corpus itself is in tests/faults/bad_input/.

Run with ``-s`` for a count of answers by status code, per route.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.app import create_app
from api.callers import known_users
from config import get_settings, load_settings
from proctoring.db import UnitOfWork, make_engine, make_session_factory
from proctoring.schema import upgrade
from tests.faults.bad_input.corpus import ROUTES, TARGETS, build, by_target
from tests.faults.bad_input.probes import ERROR_CODES, Outcome, send
from tests.faults.bad_input.world import Setup, routes, set_up
from tests.support.databases import (
    create_postgres_database,
    drop_postgres_database,
    redis_database,
)
from workers.app import create_app as create_celery
from workers.publisher import CeleryPublisher

pytestmark = [
    pytest.mark.integration,
    # "another algorithm" signs with the right key under HS512, for which it is short.
    pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),
]


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
    broker_url = redis_database(3)
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


@pytest.fixture(scope="module")
def setup(stack: Stack) -> Setup:
    """The world the corpus is sent against, made once for every route's run."""
    return set_up(stack.client)


@pytest.fixture(scope="module")
def served(stack: Stack) -> dict[str, set[str]]:
    """The app's paths and the methods each serves, as its OpenAPI document lists them."""
    paths = stack.client.app.openapi()["paths"]  # type: ignore[attr-defined]
    return {path: {method.upper() for method in methods} for path, methods in paths.items()}


# --- the runs -----------------------------------------------------------------------------------


def test_the_corpus_reaches_every_route_and_the_world_is_set_up(
    stack: Stack, setup: Setup, served: dict[str, set[str]]
) -> None:
    corpus = build(setup)
    assert len(corpus.probes) >= 200
    assert all(p.expect <= ERROR_CODES | {200, 202} for p in corpus.probes)
    api = {f"{m} {p}" for p, methods in served.items() if p.startswith("/v1/") for m in methods}
    assert set(ROUTES) == api, "the corpus' routes are not the API's"
    groups = by_target(corpus, served)
    assert set(groups) == set(TARGETS), "a route without probes, or probes that no test runs"

    before_db, before_broker = database_state(stack.engine), broker_state(stack.broker)
    assert {"users", "courses", "exams", "attempts", "transitions", "reviews"} <= set(before_db)
    assert all(
        before_db[t][0] > 0 for t in ("users", "exams", "attempts", "transitions", "reviews")
    )
    assert before_broker, "the setup published its transitions"


@pytest.mark.parametrize("target", TARGETS)
def test_bad_input(target: str, stack: Stack, setup: Setup, served: dict[str, set[str]]) -> None:
    """Every bad request aimed at the route is refused with a sentence and changes nothing."""
    client = stack.client
    probes = by_target(build(setup), served).get(target, [])
    assert probes, f"no probe is aimed at {target}"

    before_db, before_broker = database_state(stack.engine), broker_state(stack.broker)
    state = before_db
    outcomes: list[Outcome] = []
    changed: list[str] = []
    started = time.monotonic()
    for probe in probes:
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
        f"\n{target}: {len(outcomes)} bad requests in {elapsed:.1f}s, by status: "
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


def test_each_route_unspoiled_is_accepted(stack: Stack, setup: Setup) -> None:
    """Control, after the corpus: each route's request, unspoiled, is accepted, so the
    rejections were the corpus' doing."""
    client = stack.client
    for name, route in routes(setup).items():
        raw = route.raw()
        response = client.request(route.method, route.path, headers=route.headers(raw), content=raw)
        assert response.status_code < 300, f"{name}: {response.status_code} {response.text}"
