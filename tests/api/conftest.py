"""The real ASGI app on PostgreSQL, publishing to the machine's Redis (no worker runs here)."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import redis
from fastapi.testclient import TestClient
from standardwebhooks import Webhook

from api.app import create_app
from api.routing import known_users
from config import get_settings, load_settings
from proctoring.db import UnitOfWork, make_engine, make_session_factory
from tests.conftest import (
    JWT_SECRET,
    drop_postgres_database,
    migrated_database,
    redis_database,
    webhook_secret,
)
from workers.app import create_app as create_celery
from workers.publisher import CeleryPublisher

_ids = itertools.count(1)


def new_id() -> int:
    return 50_000_000 + os.getpid() % 1000 * 10_000 + next(_ids)


def token(
    user_id: int,
    *,
    staff: bool = False,
    username: str | None = None,
    email: str | None = None,
    expires_in: float = 600,
    key: str = JWT_SECRET,
    algorithm: str = "HS256",
    **claims: Any,
) -> str:
    payload = {
        "user_id": user_id,
        "preferred_username": username or f"user{user_id}",
        "email": email or f"user{user_id}@example.test",
        "administrator": staff,
        "exp": dt.datetime.now(dt.UTC) + dt.timedelta(seconds=expires_in),
        **claims,
    }
    return jwt.encode(payload, key, algorithm=algorithm)


def raw_bearer(**claims: Any) -> dict[str, str]:
    """A token with exactly these claims (and a valid exp unless given)."""
    claims.setdefault("exp", dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10))
    return {"Authorization": f"Bearer {jwt.encode(claims, JWT_SECRET, algorithm='HS256')}"}


def bearer(user_id: int, **kw: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user_id, **kw)}"}


def signed(
    provider: str,
    body: Any,
    *,
    webhook_id: str | None = None,
    secret: str | None = None,
    at: dt.datetime | None = None,
) -> tuple[bytes, dict[str, str]]:
    """A body and the Standard Webhooks headers a vendor sends with it."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    at = at or dt.datetime.now(dt.UTC)
    signature = Webhook(secret or webhook_secret(provider)).sign(webhook_id, at, raw.decode())
    return raw, {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


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


class Queue:
    """Reads the messages waiting on the broker, as Flower or an operator would see them."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def messages(self, name: str = "transitions") -> list[dict[str, Any]]:
        import base64

        found = []
        for raw in self.client.lrange(name, 0, -1):
            envelope = json.loads(raw)
            body = json.loads(base64.b64decode(envelope["body"]))
            found.append({"task": envelope["headers"]["task"], "args": body[0], "raw": raw})
        return found

    def clear(self) -> None:
        self.client.flushdb()


class World:
    """A course with an exam, its staff, and a learner, made through the API itself."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.admin = new_id()
        self.staff = new_id()
        self.learner = new_id()
        self.other = new_id()
        self.course = f"course-v1:proctorq+API{new_id()}+2026"
        for user in (self.staff, self.learner, self.other):
            self.ok(
                client.put(
                    f"/v1/users/{user}",
                    headers=bearer(self.admin, staff=True),
                    json={"username": f"user{user}", "email": f"user{user}@example.test"},
                )
            )
        self.ok(
            client.put(
                f"/v1/courses/{self.course}/staff/{self.staff}",
                headers=bearer(self.admin, staff=True),
            )
        )
        self.ok(
            client.put(
                f"/v1/courses/{self.course}",
                headers=bearer(self.staff),
                json={"name": "Proctoring 101"},
            )
        )
        self.exam = self.new_exam()

    @staticmethod
    def ok(response: Any) -> Any:
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    def new_exam(self, **fields: Any) -> int:
        body = {
            "course_id": self.course,
            "content_id": f"block-v1:{uuid.uuid4().hex}",
            "exam_name": "Final",
            "time_limit_mins": 60,
            **fields,
        }
        return int(
            self.ok(self.client.post("/v1/exams", headers=bearer(self.staff), json=body))["exam_id"]
        )

    def new_attempt(
        self, user: int | None = None, exam: int | None = None, **fields: Any
    ) -> dict[str, Any]:
        user = user or self.learner
        if fields.get("external_id") is not None:
            # The vendor's session id is staff's (the LMS's) to give, never the learner's.
            return self.ok(
                self.client.post(
                    f"/v1/exams/{exam or self.exam}/attempts",
                    headers=bearer(self.staff),
                    json={"user_id": user, **fields},
                )
            )
        return self.ok(
            self.client.post(
                f"/v1/exams/{exam or self.exam}/attempts", headers=bearer(user), json=fields
            )
        )


@pytest.fixture
def world(client: TestClient) -> World:
    return World(client)
