"""Who is calling: tokens checked before anything else, users kept from their claims."""

from __future__ import annotations

import datetime as dt
import time

import jwt
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from api.auth import Unauthenticated, read_token
from config import get_settings, load_settings
from proctoring.db import UnitOfWork
from proctoring.models import User
from tests.support.api import World, new_id
from tests.support.environment import JWT_SECRET
from tests.support.tokens import bearer, raw_bearer, token


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "Authentication credentials were not provided."),
        ({"Authorization": "Basic dXNlcjpwdw=="}, "Use an Authorization header of the form"),
        ({"Authorization": "Bearer "}, "Use an Authorization header of the form"),
        ({"Authorization": "Bearer not.a.jwt"}, "The token is not valid."),
    ],
)
def test_missing_or_malformed_credentials_are_401(
    client: TestClient, headers: dict[str, str], detail: str
) -> None:
    response = client.get("/v1/exams/1", headers=headers)
    assert response.status_code == 401
    assert response.json()["detail"].startswith(detail)
    assert response.headers["www-authenticate"] == "Bearer"


def test_an_expired_token_is_401(client: TestClient) -> None:
    response = client.get("/v1/exams/1", headers=bearer(new_id(), expires_in=-5))
    assert (response.status_code, response.json()["detail"]) == (401, "The token has expired.")


def test_a_token_signed_with_another_key_is_401(client: TestClient) -> None:
    other = token(new_id(), key="another-key-that-is-long-enough-for-hs256!!")
    response = client.get("/v1/exams/1", headers={"Authorization": f"Bearer {other}"})
    assert response.status_code == 401


def test_an_unsigned_token_is_401(client: TestClient) -> None:
    claims = {
        "user_id": new_id(),
        "preferred_username": "mallory",
        "email": "m@example.test",
        "administrator": True,
        "exp": dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5),
    }
    unsigned = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]
    response = client.get("/v1/exams/1", headers={"Authorization": f"Bearer {unsigned}"})
    assert response.status_code == 401


def test_a_token_without_exp_is_401(client: TestClient) -> None:
    claims = {"user_id": 5, "preferred_username": "a", "email": "a@b.c", "administrator": False}
    raw = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
    assert client.get("/v1/exams/1", headers={"Authorization": f"Bearer {raw}"}).status_code == 401


GOOD = {"user_id": 77, "preferred_username": "a", "email": "a@b.c", "administrator": False}


@pytest.mark.parametrize(
    "claims",
    [
        {"user_id": "42"},
        {"user_id": True},
        {"preferred_username": 7},
        {"administrator": "yes"},
        {"user_id": 2**64},
        {"email": None},
    ],
)
def test_claims_of_the_wrong_type_are_401(client: TestClient, claims: dict[str, object]) -> None:
    response = client.get("/v1/exams/1", headers=raw_bearer(**{**GOOD, **claims}))
    assert response.status_code == 401
    assert "user_id (integer)" in response.json()["detail"]


def test_credentials_are_checked_before_the_body(client: TestClient) -> None:
    response = client.post(
        "/v1/exams", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 401


def test_access_is_decided_before_the_body_is_validated(world: World) -> None:
    outsider = new_id()
    response = world.client.post(
        "/v1/exams",
        content=b'{"course_id": "%s", "exam_name": 5' % world.course.encode(),
        headers={**bearer(outsider), "content-type": "application/json"},
    )
    # The body is not even JSON, so no course can be read from it.
    assert (response.status_code, response.json()["detail"]) == (
        403,
        "could not determine the course_id",
    )
    response = world.client.post(
        "/v1/exams", json={"course_id": world.course, "exam_name": 5}, headers=bearer(outsider)
    )
    assert (response.status_code, response.json()["detail"]) == (
        403,
        "Must be a Staff User to Perform this request.",
    )


def test_the_callers_user_is_kept_from_the_claims(client: TestClient, uow: UnitOfWork) -> None:
    user_id = new_id()
    client.get("/v1/exams/1", headers=bearer(user_id, username="ada", email="ada@example.test"))
    client.get("/v1/exams/1", headers=bearer(user_id, username="ada.l", email="ada@example.test"))
    with uow() as session:
        user = session.scalars(select(User).where(User.user_id == user_id)).one()
        assert (user.username, user.email, user.is_staff) == ("ada.l", "ada@example.test", False)


@pytest.mark.parametrize("restricted", [True, "true", 1])
def test_a_restricted_applications_token_is_401(client: TestClient, restricted: object) -> None:
    headers = raw_bearer(**GOOD, is_restricted=restricted)
    response = client.get("/v1/exams/1", headers=headers)
    assert response.status_code == 401
    assert "restricted" in response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"


def test_restricted_tokens_are_accepted_when_the_setting_allows_them(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import api.routing
    from config import load_settings

    allowing = load_settings(jwt_allow_restricted=True, _env_file=None)
    monkeypatch.setattr(api.routing, "get_settings", lambda: allowing)
    headers = raw_bearer(**{**GOOD, "user_id": new_id()}, is_restricted=True)
    assert client.get("/v1/exams/2000000000", headers=headers).status_code == 404


def test_an_unrestricted_token_says_so_or_nothing(client: TestClient) -> None:
    for extra in ({}, {"is_restricted": False}):
        headers = raw_bearer(**{**GOOD, "user_id": new_id()}, **extra)
        assert client.get("/v1/exams/2000000000", headers=headers).status_code == 404


def test_a_verified_token_is_kept_until_it_expires(client: TestClient) -> None:
    headers = bearer(new_id(), expires_in=2)
    nowhere = "/v1/exams/2000000000"
    assert client.get(nowhere, headers=headers).status_code == 404  # verified, kept
    assert client.get(nowhere, headers=headers).status_code == 404  # found kept
    time.sleep(2.1)
    response = client.get(nowhere, headers=headers)
    assert (response.status_code, response.json()["detail"]) == (401, "The token has expired.")


def test_a_kept_token_is_checked_again_under_other_settings() -> None:
    raw = token(new_id())
    before = get_settings()
    assert read_token(f"Bearer {raw}", before).user_id
    other = load_settings(
        jwt_secret=SecretStr("another-key-of-at-least-32-bytes!!"), _env_file=None
    )
    with pytest.raises(Unauthenticated, match=r"The token is not valid\."):
        read_token(f"Bearer {raw}", other)
    assert read_token(f"JWT {raw}", before).user_id  # the first settings still take it
