"""Bad input gets a 4xx with a sentence; the store being away is a 503; nothing is lost."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from config import get_settings, load_settings
from proctoring.db import UnitOfWork, make_engine, make_session_factory
from proctoring.models import Transition
from tests.support.api import World, new_id
from tests.support.tokens import bearer
from workers.app import create_app as create_celery
from workers.publisher import CeleryPublisher


def test_a_body_over_the_limit_is_413(world: World) -> None:
    limit = get_settings().max_body_bytes
    response = world.client.post(
        "/v1/exams",
        content=b"x" * (limit + 1),
        headers={**bearer(world.staff), "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert str(limit) in response.json()["detail"]


def test_a_streamed_body_over_the_limit_is_413(world: World) -> None:
    limit = get_settings().max_body_bytes

    def chunks() -> Iterator[bytes]:
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    response = world.client.post("/v1/exams", content=chunks(), headers=bearer(world.staff))
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{not json", "The body is not valid JSON."),
        (b'{"to_status": "flying"}', "to_status is not valid"),
        (b'{"to_status": 5}', "to_status is not valid"),
        (b"{}", "to_status is required."),
        (b'{"to_status": "started", "extra": 1}', "extra is not a field of this request."),
        (b"[]", "is not valid"),
    ],
)
def test_bad_bodies_are_422_with_a_sentence(world: World, body: bytes, detail: str) -> None:
    attempt = world.new_attempt()
    response = world.client.post(
        f"/v1/attempts/{attempt['attempt_id']}/transitions",
        content=body,
        headers={**bearer(world.learner), "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert detail in response.json()["detail"]


def test_unknown_routes_and_methods(client: TestClient) -> None:
    assert client.get("/v2/nothing").status_code == 404
    assert "detail" in client.get("/v2/nothing").json()
    assert client.put("/healthz").status_code == 405


def test_ids_out_of_range_are_422_not_500(world: World) -> None:
    for path in ("/v1/attempts/99999999999999999999", "/v1/exams/3000000000", "/v1/attempts/-1"):
        response = world.client.get(path, headers=bearer(world.learner))
        assert response.status_code == 422, path
        assert response.json()["detail"]


# Digits to str.isdigit() but not ids: superscript, circled, Arabic-Indic, fullwidth; numbers
# int() will not read (over 4,300 digits); forms pydantic would read as an integer.
NOT_ASCII_IDS = ["²", "①", "٣", "１２", "1" * 5000, "%2012", "+12", "1_2", "12%0A"]


@pytest.mark.parametrize("raw", NOT_ASCII_IDS, ids=lambda raw: repr(raw[:8]))
def test_ids_that_are_not_ascii_digits_are_4xx_never_500(world: World, raw: str) -> None:
    attempt = world.new_attempt()["attempt_id"]
    staff = bearer(world.staff)
    admin = bearer(world.admin, staff=True)
    requests = [
        ("GET", f"/v1/attempts/{raw}", bearer(world.learner), None),
        ("DELETE", f"/v1/attempts/{raw}", staff, None),
        ("GET", f"/v1/attempts/{raw}/transitions", bearer(world.learner), None),
        (
            "POST",
            f"/v1/attempts/{raw}/transitions",
            bearer(world.learner),
            {"to_status": "started"},
        ),
        ("GET", f"/v1/transitions/{raw}", bearer(world.learner), None),
        ("GET", f"/v1/exams/{raw}", bearer(world.learner), None),
        ("PATCH", f"/v1/exams/{raw}", staff, {"exam_name": "x"}),
        ("POST", f"/v1/exams/{raw}/attempts", bearer(world.other), {}),
        ("PUT", f"/v1/users/{raw}", admin, {"username": "u", "email": "u@example.test"}),
        ("GET", f"/v1/users/{raw}/credit", bearer(world.learner), None),
        ("PUT", f"/v1/courses/{world.course}/staff/{raw}", admin, None),
        ("DELETE", f"/v1/courses/{world.course}/staff/{raw}", admin, None),
    ]
    for method, path, headers, body in requests:
        response = world.client.request(method, path, headers=headers, json=body)
        assert response.status_code in (404, 422), (method, path[:60], response.text[:200])
        assert response.json()["detail"], (method, path[:60])
    assert world.client.get(f"/v1/attempts/{attempt}", headers=bearer(world.learner)).is_success


def test_nul_characters_are_refused(world: World) -> None:
    response = world.client.post(
        "/v1/exams",
        json={
            "course_id": world.course,
            "content_id": "a\x00b",
            "exam_name": "x",
            "time_limit_mins": 1,
        },
        headers=bearer(world.staff),
    )
    assert response.status_code == 422


def test_an_unreachable_store_is_503_and_accepts_nothing(
    api_database: str, broker_url: str
) -> None:
    settings = load_settings(database_url=api_database, broker_url=broker_url, _env_file=None)
    celery = create_celery(settings, current=False)
    dead = make_engine(
        "postgresql+psycopg://postgres@127.0.0.1:1/none", connect_args={"connect_timeout": 1}
    )
    uow = UnitOfWork(make_session_factory(dead), CeleryPublisher(celery))
    app = create_app(settings, uow=uow, celery=celery)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post(
            "/v1/attempts/1/transitions", json={"to_status": "started"}, headers=bearer(new_id())
        )
        assert response.status_code == 503
        assert response.json()["detail"].startswith("The store is unreachable")
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["database"] == "unreachable"


def test_an_unreachable_broker_still_accepts(world: World, api_database: str) -> None:
    settings = load_settings(
        database_url=api_database, broker_url="redis://127.0.0.1:1/0", _env_file=None
    )
    celery = create_celery(settings, current=False)
    engine = make_engine(api_database)
    uow = UnitOfWork(make_session_factory(engine), CeleryPublisher(celery))
    attempt = world.new_attempt()
    with TestClient(create_app(settings, uow=uow, celery=celery)) as client:
        response = client.post(
            f"/v1/attempts/{attempt['attempt_id']}/transitions",
            json={"to_status": "started"},
            headers=bearer(world.learner),
        )
        assert response.status_code == 202
        assert client.get("/readyz").json() == {"database": "ok", "broker": "unreachable"}
    with uow() as session:
        recorded = session.scalar(
            select(func.count())
            .select_from(Transition)
            .where(Transition.id == response.json()["transition_id"])
        )
    assert recorded == 1  # the sweeper publishes it once the broker is back
    engine.dispose()


def test_health(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"database": "ok", "broker": "ok"}
