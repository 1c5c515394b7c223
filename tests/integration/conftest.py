"""Fixtures for tests that run real worker processes on real Redis, PostgreSQL and SMTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import Stack, stack
from tests.support.servers import HTTPEndpoint, SMTPServer

pytestmark = pytest.mark.integration


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
