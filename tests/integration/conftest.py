"""Fixtures for tests that run real worker processes on real Redis, PostgreSQL and SMTP."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import REDIS_URL, create_postgres_database, drop_postgres_database
from tests.harness import Stack, stack
from tests.servers import HTTPEndpoint, SMTPServer

pytestmark = pytest.mark.integration


@pytest.fixture
def postgres_url() -> Iterator[str]:
    from proctoring.db import make_engine
    from proctoring.schema import upgrade

    url = create_postgres_database()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    drop_postgres_database(url)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A database of the machine's Redis of our own for this test, empty at start and end."""
    number = 1 + os.getpid() % 15
    url = REDIS_URL.rsplit("/", 1)[0] + f"/{number}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    with SMTPServer() as server:
        yield server


@pytest.fixture
def lms() -> Iterator[HTTPEndpoint]:
    with HTTPEndpoint() as endpoint:
        yield endpoint


@pytest.fixture
def pipeline(
    tmp_path: Path, postgres_url: str, redis_url: str, smtp: SMTPServer, lms: HTTPEndpoint
) -> Iterator[Stack]:
    """PostgreSQL, Redis, SMTP and the LMS's credit endpoint: no process started yet."""
    with stack(
        tmp_path,
        postgres_url,
        redis_url,
        PROCTORQ_SMTP_URL=smtp.url,
        PROCTORQ_CREDIT_WEBHOOK_URL=lms.url,
    ) as running:
        yield running
