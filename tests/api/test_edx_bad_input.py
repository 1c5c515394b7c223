"""Bad input on the routes of edx-proctoring's REST protocol: every request below is refused
with a 4xx and a sentence, none is a 500, and none changes a row."""

from __future__ import annotations

import json
from typing import Any

import jwt
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from proctoring.db import UnitOfWork
from proctoring.models import Attempt, AttemptHistory, Outbox, Review, Transition
from tests.api.test_edx_callbacks import CALLBACK, TOKEN, as_vendor, session_of
from tests.support.api import World
from tests.support.environment import EDX_CLIENT, EDX_CLIENT_SECRET
from tests.support.tokens import bearer

FORM = {"content-type": "application/x-www-form-urlencoded"}
JSON = {"content-type": "application/json"}
GOOD_FORM = (
    f"grant_type=client_credentials&client_id={EDX_CLIENT}&client_secret={EDX_CLIENT_SECRET}"
)

# (label, path, headers, body, the codes it may get)
Probe = tuple[str, str, dict[str, str], bytes, set[int]]


def _token_probes() -> list[Probe]:
    oversized = GOOD_FORM + "&x=" + "a" * 2_000_000
    return [
        ("no body", TOKEN, FORM, b"", {400, 401}),
        ("JSON instead of a form", TOKEN, JSON, json.dumps({"a": 1}).encode(), {400, 401}),
        ("a wrong secret", TOKEN, FORM, GOOD_FORM.encode() + b"x", {401}),
        ("a grant it does not give", TOKEN, FORM, b"grant_type=password", {400, 401}),
        ("a repeated field", TOKEN, FORM, (GOOD_FORM + "&client_id=x").encode(), {400}),
        ("bytes that are not text", TOKEN, FORM, b"\xff\xfe\x00", {400}),
        (
            "a NUL in the client id",
            TOKEN,
            FORM,
            GOOD_FORM.replace("-client", "%00").encode(),
            {401},
        ),
        ("too large", TOKEN, FORM, oversized.encode(), {413}),
        (
            "Basic that is not base64",
            TOKEN,
            {**FORM, "Authorization": "Basic %%%"},
            b"grant_type=client_credentials",
            {400, 401},
        ),
    ]


def _callback_probes(session: str, user_token: str, vendor: str, other: str) -> list[Probe]:
    ready = CALLBACK.format(session, "ready")
    reviewed = CALLBACK.format(session, "reviewed")
    passed = json.dumps({"status": "passed"}).encode()
    forged = jwt.encode({"provider": "edxvendor", "exp": 9_999_999_999}, "x" * 40)
    probes: list[Probe] = []
    for path in (ready, reviewed):
        probes += [
            (f"{path}: no token", path, JSON, passed, {401}),
            (f"{path}: a user's token", path, {**JSON, "Authorization": user_token}, passed, {401}),
            (
                f"{path}: a forged token",
                path,
                {**JSON, "Authorization": f"JWT {forged}"},
                passed,
                {401},
            ),
            (f"{path}: a word for a scheme", path, {**JSON, "Authorization": "JWT"}, passed, {401}),
            (f"{path}: another vendor", path, {**JSON, "Authorization": other}, passed, {401, 403}),
            (
                f"{path}: nobody's session",
                path.replace(session, "no-such-session"),
                {**JSON, "Authorization": vendor},
                passed,
                {400, 404},
            ),
            (
                f"{path}: too large",
                path,
                {**JSON, "Authorization": vendor},
                b'{"status": "passed", "x": "' + b"a" * 2_000_000 + b'"}',
                {413},
            ),
        ]
    for label, body in [
        ("not JSON", b"{"),
        ("a list", b"[]"),
        ("a word outside the four", b'{"status": "approved"}'),
        ("no status", b'{"comments": []}'),
        ("a status that is a number", b'{"status": 1}'),
        ("comments that are not a list", b'{"status": "passed", "comments": "x"}'),
        ("a reviewer that is not text", b'{"status": "passed", "reviewed_by": []}'),
        ("a lone surrogate", b'{"status": "pass\\ud800ed"}'),
        ("bytes that are not UTF-8", b'{"status": "\xff"}'),
    ]:
        probes.append(
            (f"reviewed: {label}", reviewed, {**JSON, "Authorization": vendor}, body, {400, 422})
        )
    return probes


def _rows(uow: UnitOfWork) -> dict[str, int]:
    with uow() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Attempt, AttemptHistory, Outbox, Review, Transition)
        }


def _sentence(answer: Any) -> bool:
    return isinstance(answer, dict) and isinstance(answer.get("detail"), str) and answer["detail"]


def test_bad_input_on_the_edx_routes_is_refused_and_changes_nothing(
    client: TestClient, world: World, uow: UnitOfWork
) -> None:
    session, _ = session_of(world)
    vendor = as_vendor(world.client)["Authorization"]
    other = "JWT " + client.post(
        TOKEN,
        data={
            "grant_type": "client_credentials",
            "client_id": "bothways-client",
            "client_secret": "bothways-callback-secret-long-enough-for-hs256",
        },
    ).json().get("access_token", "none")
    user_token = bearer(world.learner)["Authorization"]
    probes = _token_probes() + _callback_probes(session, user_token, vendor, other)
    before = _rows(uow)
    wrong = []
    for label, path, headers, body, expected in probes:
        response = client.post(path, content=body, headers=headers)
        if response.status_code not in expected:
            wrong.append(f"{label}: {response.status_code} {response.text[:200]}")
        elif not _sentence(response.json()):
            wrong.append(f"{label}: no detail sentence in {response.text[:200]}")
    assert not wrong, "\n".join(wrong)
    assert _rows(uow) == before
