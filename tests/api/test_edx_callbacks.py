"""A vendor speaking edx-proctoring's REST protocol calls us: its token, "ready", "reviewed",
each answered as edx-proctoring answers it, the token checked before anything is looked up."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from proctoring import apply
from proctoring.db import UnitOfWork
from proctoring.models import Review, Transition
from tests.support.api import World
from tests.support.environment import EDX_CLIENT, EDX_CLIENT_SECRET
from tests.support.tokens import bearer

TOKEN = "/oauth2/access_token"
CALLBACK = "/api/edx_proctoring/v1/proctored_exam/attempt/{}/{}"


def form(**fields: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "token_type": "jwt", **fields}


def vendor_token(
    client: TestClient, client_id: str = EDX_CLIENT, secret: str = EDX_CLIENT_SECRET
) -> str:
    response = client.post(TOKEN, data=form(client_id=client_id, client_secret=secret))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def as_vendor(client: TestClient, scheme: str = "JWT", **kw: Any) -> dict[str, str]:
    return {"Authorization": f"{scheme} {vendor_token(client, **kw)}"}


def session_of(world: World, provider: str = "edxvendor", **fields: Any) -> tuple[str, dict]:
    exam = world.new_exam(provider=provider, **fields)
    external_id = f"session-{uuid.uuid4()}"
    attempt = world.new_attempt(exam=exam, external_id=external_id, taking_as_proctored=True)
    return external_id, attempt


def move(world: World, uow: UnitOfWork, attempt: dict, *statuses: str) -> None:
    url = f"/v1/attempts/{attempt['attempt_id']}/transitions"
    ids = [
        world.ok(world.client.post(url, json={"to_status": s}, headers=bearer(world.learner)))[
            "transition_id"
        ]
        for s in statuses
    ]
    with uow() as session:
        apply.apply_transitions(session, ids)


def status_of(world: World, attempt: dict) -> str:
    answer = world.client.get(f"/v1/attempts/{attempt['attempt_id']}", headers=bearer(world.staff))
    return str(world.ok(answer)["status"])


# --- the token ---------------------------------------------------------------------------------


def test_a_callback_client_gets_an_hour_long_jwt_naming_its_provider(client: TestClient) -> None:
    response = client.post(TOKEN, data=form(client_id=EDX_CLIENT, client_secret=EDX_CLIENT_SECRET))
    assert response.status_code == 200
    answer = response.json()
    assert {k: answer[k] for k in ("token_type", "expires_in", "scope")} == {
        "token_type": "JWT",
        "expires_in": 3600,
        "scope": "",
    }
    assert response.headers["cache-control"] == "no-store"
    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    assert claims["provider"] == "edxvendor"
    assert 3590 <= claims["exp"] - time.time() <= 3600


def test_client_credentials_in_a_basic_header(client: TestClient) -> None:
    basic = base64.b64encode(f"{EDX_CLIENT}:{EDX_CLIENT_SECRET}".encode()).decode()
    response = client.post(
        TOKEN,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "fields",
    [
        {"client_id": EDX_CLIENT, "client_secret": "not-the-secret"},
        {"client_id": "nobody", "client_secret": EDX_CLIENT_SECRET},
        {"client_id": EDX_CLIENT},
        {},
    ],
)
def test_a_wrong_client_is_invalid_client(client: TestClient, fields: dict[str, str]) -> None:
    response = client.post(TOKEN, data=form(**fields))
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")
    assert response.json()["detail"] == response.json()["error_description"]


def test_another_grant_type_is_unsupported(client: TestClient) -> None:
    fields = form(client_id=EDX_CLIENT, client_secret=EDX_CLIENT_SECRET, grant_type="password")
    response = client.post(TOKEN, data=fields)
    assert (response.status_code, response.json()["error"]) == (400, "unsupported_grant_type")
    assert "client_credentials" in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        b"client_id=edxvendor-client&client_secret=edxvendor-callback-secret-long-enough-for-hs256",
        b"grant_type=client_credentials&grant_type=client_credentials",
        b"\xff\xfe",
    ],
)
def test_a_form_that_cannot_be_read_is_invalid_request(client: TestClient, body: bytes) -> None:
    response = client.post(
        TOKEN, content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code in (400, 401)
    assert set(response.json()) == {"error", "error_description", "detail"}


def test_a_vendor_token_is_no_users_token_and_the_other_way_round(world: World) -> None:
    vendor = as_vendor(world.client, scheme="Bearer")
    response = world.client.get(f"/v1/exams/{world.exam}", headers=vendor)
    assert response.status_code == 401 and response.json()["detail"]
    external_id, _ = session_of(world)
    user = bearer(world.staff, staff=True)
    response = world.client.post(CALLBACK.format(external_id, "ready"), headers=user)
    assert response.status_code == 401 and response.json()["detail"]


# --- ready -------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["JWT", "Bearer"])
def test_ready_moves_the_attempt_once(world: World, uow: UnitOfWork, scheme: str) -> None:
    external_id, attempt = session_of(world)
    headers = as_vendor(world.client, scheme=scheme)
    url = CALLBACK.format(external_id, "ready")
    answers = [world.client.post(url, headers=headers, json={"status": "ready"}) for _ in "ab"]
    assert [(a.status_code, a.json()) for a in answers] == [(200, "OK"), (200, "OK")]
    with uow() as session:
        ids = session.scalars(
            select(Transition.id).where(Transition.attempt_id == attempt["attempt_id"])
        ).all()
        assert len(ids) == 1
        apply.apply_transitions(session, list(ids))
    assert status_of(world, attempt) == "ready_to_start"


def test_ready_for_a_session_nobody_holds_is_404(world: World) -> None:
    response = world.client.post(
        CALLBACK.format("no-such-session", "ready"), headers=as_vendor(world.client)
    )
    assert response.status_code == 404 and response.json()["detail"]


def test_another_providers_session_is_403(world: World) -> None:
    external_id, _ = session_of(world, provider="bothways")
    for kind in ("ready", "reviewed"):
        response = world.client.post(
            CALLBACK.format(external_id, kind),
            headers=as_vendor(world.client),
            json={"status": "passed"},
        )
        assert response.status_code == 403 and response.json()["detail"]


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "JWT",
        "JWT not-a-token",
        "Basic abc",
        "JWT "
        + jwt.encode(
            {"provider": "edxvendor"},
            "a-guessed-key-that-is-long-enough-for-hs256",
            headers={"kid": EDX_CLIENT},
        ),
        "JWT "
        + jwt.encode(
            {
                "iss": "proctorq",
                "aud": "proctorq:edx-rest-vendor",
                "sub": EDX_CLIENT,
                "provider": "edxvendor",
                "exp": int(time.time()) - 5,
            },
            EDX_CLIENT_SECRET,
            headers={"kid": EDX_CLIENT},
        ),
    ],
)
def test_no_or_a_bad_token_is_401_before_anything_is_looked_up(
    client: TestClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for kind in ("ready", "reviewed"):
        response = client.post(
            CALLBACK.format("no-such-session", kind), headers=headers, content=b"{not json"
        )
        assert response.status_code == 401, response.text
        assert response.json()["detail"]


# --- reviewed ----------------------------------------------------------------------------------


def review(world: World, external_id: str, body: Any) -> Any:
    return world.client.post(
        CALLBACK.format(external_id, "reviewed"), headers=as_vendor(world.client), json=body
    )


def reviews_of(uow: UnitOfWork, attempt: dict) -> list[tuple[str, str, str]]:
    with uow() as session:
        rows = session.scalars(
            select(Review).where(Review.attempt_id == attempt["attempt_id"]).order_by(Review.id)
        ).all()
        return [(r.review_status, r.outcome.value, r.state.value) for r in rows]


def test_edx_proctorings_review_with_comments_verifies(world: World, uow: UnitOfWork) -> None:
    external_id, attempt = session_of(world)
    move(world, uow, attempt, "started", "submitted")
    body = {
        "status": "passed",
        "comments": [
            {"comment": "Looks suspicious", "status": "ok"},
            {"comment": "Left the frame", "status": "ok", "start": 12, "stop": 40, "duration": 28},
        ],
    }
    response = review(world, external_id, body)
    assert (response.status_code, response.json()) == (200, "OK")
    assert reviews_of(uow, attempt) == [("passed", "verified", "applied")]
    with uow() as session:
        stored = session.scalars(
            select(Review.comments).where(Review.attempt_id == attempt["attempt_id"])
        ).one()
        assert '"duration":28' in stored and '"start":12' in stored and '"stop":40' in stored


def test_the_same_body_again_changes_nothing(world: World, uow: UnitOfWork) -> None:
    external_id, attempt = session_of(world)
    move(world, uow, attempt, "started", "submitted")
    body = {"status": "suspicious", "comments": [{"comment": "Phone", "status": "suspicious"}]}
    for _ in range(3):
        assert review(world, external_id, body).json() == "OK"
    assert reviews_of(uow, attempt) == [("suspicious", "second_review_required", "applied")]
    with uow() as session:
        count = session.scalar(
            select(func.count())
            .select_from(Transition)
            .where(Transition.attempt_id == attempt["attempt_id"], Transition.source == "vendor")
        )
        assert count == 1


def test_a_second_review_by_a_known_reviewer_rejects(world: World, uow: UnitOfWork) -> None:
    external_id, attempt = session_of(world)
    move(world, uow, attempt, "started", "submitted")
    assert review(world, external_id, {"status": "violation"}).json() == "OK"
    # The staff member is a known user: a human reviewed it.
    reviewer = f"user{world.staff}@example.test"
    second = {"status": "violation", "reviewed_by": reviewer}
    assert review(world, external_id, second).json() == "OK"
    assert reviews_of(uow, attempt) == [
        ("violation", "second_review_required", "applied"),
        ("violation", "rejected", "applied"),
    ]


def test_a_reviewer_nobody_knows_is_not_a_human_reviewer(world: World, uow: UnitOfWork) -> None:
    external_id, attempt = session_of(world)
    move(world, uow, attempt, "started", "submitted")
    body = {"status": "violation", "reviewed_by": "someone@vendor.example"}
    assert review(world, external_id, body).json() == "OK"
    assert reviews_of(uow, attempt) == [("violation", "second_review_required", "applied")]


def test_a_review_before_the_submit_is_held(world: World, uow: UnitOfWork) -> None:
    external_id, attempt = session_of(world)
    move(world, uow, attempt, "started")
    assert review(world, external_id, {"status": "passed"}).json() == "OK"
    assert reviews_of(uow, attempt) == [("passed", "verified", "held")]


@pytest.mark.parametrize(
    "body",
    [
        {"status": "Clean"},
        {"status": "passed", "comments": "not a list"},
        {"status": "passed", "comments": [{"comment": "no status"}]},
        {},
        [],
    ],
)
def test_a_body_that_is_not_valid_is_400(world: World, body: Any) -> None:
    external_id, _ = session_of(world)
    response = review(world, external_id, body)
    assert response.status_code == 400 and response.json()["detail"]


def test_a_lone_surrogate_in_a_comments_extra_field_is_stored_escaped(world: World) -> None:
    """Fields of a comment beyond edx-proctoring's are kept as sent; text no database can
    store is kept escaped, never a 500."""
    external_id, _ = session_of(world)
    raw = (
        b'{"status": "suspicious", '
        b'"comments": [{"comment": "ab", "status": "x", "note": "a\\ud800b"}]}'
    )
    response = world.client.post(
        CALLBACK.format(external_id, "reviewed"),
        headers={**as_vendor(world.client), "content-type": "application/json"},
        content=raw,
    )
    assert response.status_code == 200, response.text


def test_a_review_of_a_session_nobody_holds_is_400(world: World, uow: UnitOfWork) -> None:
    response = review(world, "no-such-session", {"status": "passed"})
    assert response.status_code == 400 and response.json()["detail"]
    # Released by an archive, as edx-proctoring releases it.
    external_id, attempt = session_of(world)
    deleted = world.client.delete(
        f"/v1/attempts/{attempt['attempt_id']}", headers=bearer(world.staff)
    )
    assert deleted.status_code < 300
    response = review(world, external_id, {"status": "passed"})
    assert response.status_code == 400 and response.json()["detail"]


def test_an_exam_no_longer_proctored_is_412(world: World, uow: UnitOfWork) -> None:
    external_id, attempt = session_of(world)
    exam_id = world.ok(
        world.client.get(f"/v1/attempts/{attempt['attempt_id']}", headers=bearer(world.staff))
    )["exam_id"]
    world.ok(
        world.client.patch(
            f"/v1/exams/{exam_id}", headers=bearer(world.staff), json={"is_proctored": False}
        )
    )
    response = review(world, external_id, {"status": "passed"})
    assert (response.status_code, response.json()) == (412, "Exam no longer proctored")
    assert reviews_of(uow, attempt) == []


def test_the_routes_are_in_the_document_with_examples(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    paths = document["paths"]
    assert "/oauth2/access_token" in paths
    reviewed = paths["/api/edx_proctoring/v1/proctored_exam/attempt/{external_id}/reviewed"]
    examples = reviewed["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert "mockprock" in examples
    assert "412" in reviewed["post"]["responses"]
    assert "/api/edx_proctoring/v1/proctored_exam/attempt/{external_id}/ready" in paths
