"""Suite-wide fixtures: the test settings, and a real database per backend, migrated.

Every domain test runs on SQLite and on PostgreSQL, inside a transaction that is rolled back
at its end. The schema is built by running the migrations, never by ``create_all``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from config import get_settings
from proctoring.db import make_engine, make_session_factory
from tests.support.databases import drop_postgres_database, migrated_database, redis_database
from tests.support.environment import TEST_ENV, UNSET
from tests.support.summary import STATEFUL_STEPS

_ENVIRONMENT = pytest.StashKey[pytest.MonkeyPatch]()


def pytest_configure(config: pytest.Config) -> None:
    """The suite's settings, for the whole session, in place before any test module is
    collected: some build from the settings when imported (test_schemathesis.py its app, the
    bad-input corpus the body limit). Undone when the session ends."""
    environment = pytest.MonkeyPatch()
    for name, value in TEST_ENV.items():
        environment.setenv(name, value)
    for name in UNSET:
        environment.delenv(name, raising=False)
    config.stash[_ENVIRONMENT] = environment
    get_settings.cache_clear()


def pytest_unconfigure(config: pytest.Config) -> None:
    environment = config.stash.get(_ENVIRONMENT, None)
    if environment is not None:
        environment.undo()
    get_settings.cache_clear()


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
