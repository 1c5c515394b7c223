"""Suite-wide fixtures: the test settings, and a real database per backend, migrated.

Every domain test runs on SQLite and on PostgreSQL, inside a transaction that is rolled back
at its end. The schema is built by running the migrations, never by ``create_all``.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

POSTGRES_ADMIN_URL = os.environ.get(
    "PROCTORQ_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("PROCTORQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("PROCTORQ_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def webhook_secret(name: str) -> str:
    """A Standard Webhooks key of 24 to 64 bytes, as the settings require."""
    return "whsec_" + base64.b64encode(f"{name}-signing-key-for-the-tests".encode()).decode()


CLEAN_WORDS = {
    "Clean": "passed",
    "Rules Violation": "violation",
    "Suspicious": "suspicious",
    "Not Reviewed": "not_reviewed",
}

PROVIDERS = {
    # The default vocabulary, a second review required, time-outs kept only while created.
    "acme": {"secrets": [webhook_secret("acme-old"), webhook_secret("acme")]},
    # A vendor speaking its own words, that keeps the timed-out state.
    "cleanview": {
        "secrets": [webhook_secret("cleanview")],
        "review_statuses": CLEAN_WORDS,
        "passing": ["passed"],
        "allow_timed_out_state": True,
    },
    # No second review, and time-outs always become submitted.
    "strict": {
        "secrets": [webhook_secret("strict")],
        "require_second_review": False,
        "allow_timed_out_state": False,
    },
}

JWT_SECRET = "a-test-jwt-secret-that-is-long-enough-for-hs256"

TEST_ENV = {
    "PROCTORQ_PROVIDERS": json.dumps(PROVIDERS),
    "PROCTORQ_DEFAULT_PROVIDER": "acme",
    "PROCTORQ_JWT_SECRET": JWT_SECRET,
    "PROCTORQ_SUPPORT_URL": "https://support.example.test/",
    "PROCTORQ_EMAIL_FROM": "proctorq <noreply@proctorq.test>",
}

os.environ.update(TEST_ENV)
for stray in ("PROCTORQ_SMTP_URL", "PROCTORQ_CREDIT_WEBHOOK_URL", "PROCTORQ_DATABASE_URL"):
    os.environ.pop(stray, None)

from config import get_settings  # noqa: E402  (after the environment is set)
from proctoring.db import make_engine, make_session_factory  # noqa: E402
from proctoring.schema import upgrade  # noqa: E402

get_settings.cache_clear()


def create_postgres_database() -> str:
    """A fresh, empty database on the local server; returns its URL."""
    admin = create_engine(POSTGRES_ADMIN_URL, poolclass=NullPool)
    name = f"proctorq_test_{uuid.uuid4().hex[:12]}"
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    name = make_url(url).database
    admin = create_engine(POSTGRES_ADMIN_URL, poolclass=NullPool)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def migrated_database(backend: str, tmp_dir: str = "") -> str:
    url = (
        f"sqlite:///{tmp_dir}/proctorq-{uuid.uuid4().hex[:8]}.sqlite3"
        if backend == "sqlite"
        else create_postgres_database()
    )
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def redis_database(offset: int = 0) -> str:
    """A database number of the machine's Redis for this test run, apart from others'."""
    return REDIS_URL.rsplit("/", 1)[0] + f"/{1 + (os.getpid() + offset) % 15}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, migrated database of its own on the machine's PostgreSQL."""
    url = migrated_database("postgresql")
    yield url
    drop_postgres_database(url)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A database of the machine's Redis for this test, empty at start and end."""
    url = redis_database()
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    url = migrated_database(request.param, str(tmp_path_factory.mktemp("db")))
    yield url
    if request.param == "postgresql":
        drop_postgres_database(url)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session inside a transaction that is rolled back when the test ends."""
    with engine.connect() as connection:
        transaction = connection.begin()
        factory = make_session_factory(engine)
        test_session = factory(bind=connection, join_transaction_mode="create_savepoint")
        try:
            yield test_session
        finally:
            test_session.close()
            transaction.rollback()


STATEFUL_STEPS: dict[str, int] = {}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say how many tests ran on each database, and how far the stateful test went."""
    passed = terminalreporter.stats.get("passed", [])
    per_backend = {
        backend: sum(1 for r in passed if f"[{backend}" in r.nodeid)
        for backend in ("sqlite", "postgresql")
    }
    if any(per_backend.values()):
        terminalreporter.write_line(
            "domain tests passed per database: "
            + ", ".join(f"{name} {count}" for name, count in per_backend.items())
        )
    for backend, steps in sorted(STATEFUL_STEPS.items()):
        terminalreporter.write_line(f"stateful test against the model: {steps} steps on {backend}")
