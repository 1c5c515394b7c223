"""The real ASGI app on PostgreSQL, publishing to the machine's Redis (no worker runs here)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from api.callers import known_users
from config import get_settings, load_settings
from proctoring.db import UnitOfWork, make_engine, make_session_factory
from tests.support.api import Queue, World
from tests.support.databases import drop_postgres_database, migrated_database, redis_database
from workers.publisher import CeleryPublisher


@pytest.fixture(scope="session")
def api_database() -> Iterator[str]:
    url = migrated_database("postgresql")
    yield url
    drop_postgres_database(url)


@pytest.fixture(scope="session")
def broker_url() -> Iterator[str]:
    url = redis_database(7)
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()


@pytest.fixture(scope="session")
def stack_parts(api_database: str, broker_url: str) -> Iterator[tuple[UnitOfWork, Any]]:
    # Imported here, not with this module: workers.app reads the settings when imported, and
    # pytest may import this module before tests/conftest.py has put the suite's in place.
    from workers.app import create_app as create_celery

    settings = load_settings(database_url=api_database, broker_url=broker_url, _env_file=None)
    celery = create_celery(settings, current=False)
    engine = make_engine(api_database)
    uow = UnitOfWork(make_session_factory(engine), CeleryPublisher(celery, pause_seconds=0))
    yield uow, celery
    engine.dispose()


@pytest.fixture
def uow(stack_parts: tuple[UnitOfWork, Any]) -> UnitOfWork:
    return stack_parts[0]


@pytest.fixture
def client(stack_parts: tuple[UnitOfWork, Any]) -> Iterator[TestClient]:
    uow, celery = stack_parts
    known_users.forget()
    app = create_app(get_settings(), uow=uow, celery=celery)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def queue(broker_url: str) -> Queue:
    return Queue(redis.Redis.from_url(broker_url))


@pytest.fixture
def world(client: TestClient) -> World:
    return World(client)
