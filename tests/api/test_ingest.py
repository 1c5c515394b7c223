"""The common case of a transition request (api/ingest.py): one statement decides and records
it, on PostgreSQL and SQLite; every other case is answered by the full path, as before."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select

from api.app import create_app
from api.auth import read_token
from api.callers import known_users
from config import get_settings
from proctoring.db import UnitOfWork, make_engine, make_session_factory
from proctoring.models import Transition, User
from tests.support.api import World, new_id
from tests.support.databases import migrated_database
from tests.support.tokens import bearer


@pytest.fixture(params=["postgresql", "sqlite"])
def backend(request: pytest.FixtureRequest, uow: UnitOfWork, tmp_path: Path) -> Iterator[Any]:
    """A world, its unit of work, and the statements the app sends, on either database."""
    if request.param == "sqlite":
        engine = make_engine(migrated_database("sqlite", str(tmp_path)))
        uow = UnitOfWork(make_session_factory(engine))
    known_users.forget()
    with TestClient(create_app(get_settings(), uow=uow), raise_server_exceptions=False) as client:
        yield World(client), uow, _Statements(uow.engine)
    if request.param == "sqlite":
        uow.engine.dispose()


class _Statements:
    def __init__(self, engine: Engine) -> None:
        self.seen: list[str] = []
        event.listen(engine, "before_cursor_execute", self._note)
        self.engine = engine

    def _note(self, _c: Any, _cur: Any, statement: str, *_: Any) -> None:
        self.seen.append(" ".join(statement.split())[:60])

    def during(self, call: Any) -> tuple[Any, list[str]]:
        self.seen.clear()
        result = call()
        return result, list(self.seen)


def _rows(uow: UnitOfWork, attempt_id: int) -> list[tuple[str, int | None, str]]:
    with uow() as session:
        return [
            (t.source.value, t.actor_user_id, t.to_status.value)
            for t in session.scalars(
                select(Transition)
                .where(Transition.attempt_id == attempt_id)
                .order_by(Transition.id)
            )
        ]


def test_the_common_case_is_one_statement(backend: Any) -> None:
    """SQLite: one INSERT through the app's engine. PostgreSQL: none through it, the lane's
    own async connections recorded the row."""
    world, uow, statements = backend
    attempt = world.new_attempt()
    url = f"/v1/attempts/{attempt['attempt_id']}/transitions"
    world.client.post(url, json={"to_status": "started"}, headers=bearer(world.learner))  # warm
    answer, sent = statements.during(
        lambda: world.client.post(
            url, json={"to_status": "submitted"}, headers=bearer(world.learner)
        )
    )
    assert answer.status_code == 202
    assert answer.json() == {"transition_id": answer.json()["transition_id"], "state": "pending"}
    if uow.engine.dialect.name == "postgresql":
        assert sent == []
    else:
        inserts = [s for s in sent if s.startswith("INSERT INTO transitions")]
        assert len(inserts) == 1 and not [s for s in sent if s.startswith("SELECT")], sent
    assert _rows(uow, attempt["attempt_id"])[-1] == ("learner", world.learner, "submitted")


def test_a_store_that_is_away_is_a_503_for_a_known_caller_too(uow: UnitOfWork) -> None:
    dead = make_engine(
        "postgresql+psycopg://postgres@127.0.0.1:1/none", connect_args={"connect_timeout": 1}
    )
    caller = new_id()
    app = create_app(get_settings(), uow=UnitOfWork(make_session_factory(dead)))
    with TestClient(app, raise_server_exceptions=False) as client:
        headers = bearer(caller)
        known_users.remember(read_token(headers["Authorization"], get_settings()))
        answer = client.post(
            "/v1/attempts/1/transitions", json={"to_status": "started"}, headers=headers
        )
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert answer.json()["detail"].startswith("The store is unreachable")
    dead.dispose()


def test_every_caller_gets_the_source_the_rules_give(backend: Any) -> None:
    world, uow, _ = backend
    attempt = world.new_attempt()["attempt_id"]
    url = f"/v1/attempts/{attempt}/transitions"
    admin = new_id()
    cases = [
        (world.learner, False, {"to_status": "started"}, "learner"),
        (world.learner, False, {"to_status": "started", "acting_for_learner": True}, "learner"),
        (world.staff, False, {"to_status": "verified"}, "staff"),
        (world.staff, False, {"to_status": "submitted", "acting_for_learner": True}, "learner"),
        (admin, True, {"to_status": "rejected"}, "staff"),
        (admin, True, {"to_status": "error", "acting_for_learner": True}, "learner"),
    ]
    for user, is_staff, body, _ in cases:
        answer = world.client.post(url, json=body, headers=bearer(user, staff=is_staff))
        assert answer.status_code == 202, answer.text
    assert _rows(uow, attempt) == [
        (source, user, str(body["to_status"])) for user, _, body, source in cases
    ]


def test_what_the_statement_does_not_take_gets_the_full_paths_answer(backend: Any) -> None:
    world, uow, _ = backend
    attempt = world.new_attempt()["attempt_id"]
    url = f"/v1/attempts/{attempt}/transitions"
    learner = bearer(world.learner)
    keyed = {**learner, "Idempotency-Key": "click-1"}

    def post(body: Any, headers: dict[str, str], path: str = url) -> tuple[int, str]:
        answer = world.client.post(path, json=body, headers=headers)
        return answer.status_code, answer.json().get("detail", "")

    first = world.client.post(url, json={"to_status": "started"}, headers=keyed)
    assert first.status_code == 202
    again = world.client.post(url, json={"to_status": "started"}, headers=keyed)
    assert again.status_code == 200 and again.json() == first.json()
    assert post({"to_status": "submitted"}, keyed)[0] == 409
    assert post({"to_status": "started"}, bearer(world.other)) == (
        403,
        "Learners may only act on their own attempts.",
    )
    stranger_bad_body = post({"to_status": "nonsense"}, bearer(world.other))
    assert stranger_bad_body[0] == 403  # access is decided before the body
    assert post({"to_status": "nonsense"}, learner)[0] == 422
    assert post({"to_status": "started", "extra": 1}, learner)[0] == 422
    assert post({"to_status": "started"}, learner, "/v1/attempts/999999999/transitions")[0] == 404
    assert post({"to_status": "started"}, {**learner, "Idempotency-Key": "two words"})[0] == 422
    text = world.client.post(
        url, content=b'{"to_status": "started"}', headers={**learner, "Content-Type": "text/plain"}
    )
    assert text.status_code == 422
    world.client.delete(f"/v1/attempts/{attempt}", headers=bearer(world.staff))
    assert post({"to_status": "started"}, learner)[0] == 404
    assert len(_rows(uow, attempt)) == 1


def test_the_callers_user_row_is_written_first(backend: Any) -> None:
    world, uow, _ = backend
    attempt = world.new_attempt()["attempt_id"]
    admin = new_id()
    answer = world.client.post(
        f"/v1/attempts/{attempt}/transitions",
        json={"to_status": "started", "acting_for_learner": True},
        headers=bearer(admin, staff=True),
    )
    assert answer.status_code == 202
    with uow() as session:
        user = session.get(User, admin)
        assert user is not None and user.is_staff


def test_a_body_in_pieces_is_read_whole_and_one_over_the_limit_is_413(backend: Any) -> None:
    world, uow, _ = backend
    attempt = world.new_attempt()["attempt_id"]
    url = f"/v1/attempts/{attempt}/transitions"
    headers = {**bearer(world.learner), "content-type": "application/json"}

    def pieces(body: bytes, size: int) -> Iterator[bytes]:
        for start in range(0, len(body), size):
            yield body[start : start + size]

    whole = world.client.post(url, content=pieces(b'{"to_status": "started"}', 5), headers=headers)
    assert whole.status_code == 202, whole.text
    limit = get_settings().max_body_bytes
    padded = b'{"to_status": "started", "pad": "' + b"x" * limit + b'"}'
    over = world.client.post(url, content=pieces(padded, 65536), headers=headers)
    assert over.status_code == 413 and str(limit) in over.json()["detail"]
    assert len(_rows(uow, attempt)) == 1
