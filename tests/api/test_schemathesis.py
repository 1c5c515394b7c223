"""Schemathesis over the app's OpenAPI document: no 5xx, and every answer as documented.

One test item per operation (``test_api[METHOD /path]``), on the real app over PostgreSQL and
Redis (the session's ``stack_parts``). Schemathesis generates positive and negative cases in
its examples, coverage and fuzzing phases; each one is sent with valid credentials, so the
checks see what lies behind authentication:

* user routes carry a global-staff bearer token (global staff may do everything, SPEC §8);
* vendor routes (``/v1/providers/{provider}/...``) carry a valid Standard Webhooks signature
  over the exact bytes sent, with a fresh ``webhook-id``. A schema-valid provider name is
  mapped onto a configured one (acme, cleanview, strict) so the signature check passes; a
  schema-invalid one is sent as generated (404). Cases that schemathesis made invalid in their
  headers are sent as generated too, unsigned (401).

In about two cases in three, schema-valid ids and names (path ids, a course, a content id, a
learner in a body, a vendor's attempt code, external id and review word) are swapped for ones
that exist, so that handlers run to their 2xx, 409 and 422 answers and those are checked
against the document too. The choice is a digest of the generated case, not chance, so that
hypothesis replays a case as it was. ``?wait=`` is cut to 10 ms: no worker runs here, and a
pending transition would be waited on for all of it.

Checks that run: not_a_server_error, status_code_conformance, content_type_conformance,
response_headers_conformance, response_schema_conformance, missing_required_header,
unsupported_method, allow_header_conformance, use_after_free, ensure_resource_availability,
ignored_auth (the app's 401 without or with bad credentials is probed for each operation).

Checks left out, and why:

* negative_data_rejection: pydantic's lax mode accepts what JSON Schema calls another type
  (``"5"`` or ``5.0`` for an integer, ``"true"`` for a boolean); and SPEC §8 decides who may
  act before the body is validated, so a schema-invalid body of a request the caller may not
  make, or about an unknown resource, is a 403 or 404, not a 4xx about the body. Both are
  deliberate. Every negative case still goes through not_a_server_error and the conformance
  checks, so a 5xx or an undocumented answer to bad input still fails.
* positive_data_acceptance: schema-valid input is often refused by design, after the schema:
  an unknown exam or attempt (404), a second exam for the same content (409), a vendor word
  outside the provider's vocabulary (422), an inactive exam (422).
* object_level_authorization: it needs a second identity configured in schemathesis; the
  cross-tenant rules are covered by tests/faults/test_bad_input.py and tests/api.

The run is bounded by ``MAX_EXAMPLES`` per operation (the module takes about 40 seconds); the
hypothesis example database is off, so nothing is written to the working tree.

The app is built when the module is imported (schemathesis reads the document then, and its
parametrize does not take function-scoped fixtures); the session fixture ``st_app`` binds it
to the session's database and broker (``stack_parts`` of tests/api/conftest.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.core import NotSet
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    object_level_authorization,
    positive_data_acceptance,
)

from api.app import create_app
from api.callers import known_users
from config import get_settings
from proctoring.db import UnitOfWork
from tests.support.api import World, new_id
from tests.support.environment import CLEAN_WORDS, webhook_secret
from tests.support.tokens import bearer

MAX_EXAMPLES = 50
EXCLUDED_CHECKS = [negative_data_rejection, positive_data_acceptance, object_level_authorization]
PROVIDERS = ("acme", "cleanview", "strict")
WORDS = {
    "acme": ["passed", "violation", "suspicious", "not_reviewed"],
    "cleanview": list(CLEAN_WORDS),
    "strict": ["passed", "violation", "suspicious", "not_reviewed"],
}


def _unbound() -> Any:
    raise RuntimeError("the schemathesis app was called before st_app bound it to a database")


# Schemathesis reads the document when the module is imported, so the app exists from then on;
# st_app gives it the session's database and broker before any case is sent.
APP = create_app(get_settings(), uow=UnitOfWork(_unbound))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
schema.config.generation.update(max_examples=MAX_EXAMPLES)


@dataclass
class Known:
    """What exists, for generated values to be swapped with."""

    world: World
    admin: int = field(default_factory=new_id)
    attempt: int = 0
    doomed: int = 0
    changed_exam: int = 0
    transition: int = 0
    content: str = ""
    vendor_codes: dict[str, list[str]] = field(default_factory=dict)
    vendor_external_ids: dict[str, list[str]] = field(default_factory=dict)


@pytest.fixture(scope="session")
def st_app(stack_parts: tuple[UnitOfWork, Any]) -> FastAPI:
    uow, celery = stack_parts
    known_users.forget()
    APP.state.uow = uow
    APP.state.celery = celery
    return APP


@pytest.fixture(scope="session")
def known(st_app: FastAPI) -> Iterator[Known]:
    with TestClient(st_app, raise_server_exceptions=False) as client:
        world = World(client)
        found = Known(world)
        found.attempt = world.new_attempt()["attempt_id"]
        found.changed_exam = world.new_exam()
        found.doomed = world.new_attempt(user=world.other)["attempt_id"]
        found.content = world.ok(
            client.get(f"/v1/exams/{world.exam}", headers=bearer(world.learner))
        )["content_id"]
        found.transition = world.ok(
            client.post(
                f"/v1/attempts/{found.attempt}/transitions",
                json={"to_status": "started"},
                headers=bearer(world.learner),
            )
        )["transition_id"]
        for provider in PROVIDERS:
            exam = world.new_exam(provider=provider)
            made = world.new_attempt(exam=exam, external_id=f"st-{provider}-{uuid.uuid4().hex}")
            found.vendor_codes[provider] = [made["attempt_code"]]
            found.vendor_external_ids[provider] = [made["external_id"]]
        yield found


class Swaps:
    """Known values instead of generated ones, for about two fields in three.

    Decided by a digest of what was generated (not by chance), so that hypothesis replays a
    case as it was; the field's name keeps the decisions about a case's fields apart.
    """

    def __init__(self, case: Any, known: Known) -> None:
        self.case = case
        self.known = known
        generated = (sorted((case.path_parameters or {}).items()), case.query, case.body)
        self.key = zlib.crc32(repr(generated).encode())

    def pick(self, name: str, value: Any, choices: list[Any]) -> Any:
        crc = zlib.crc32(f"{self.key}:{name}".encode())
        return choices[crc // 3 % len(choices)] if crc % 3 else value

    def user_route(self) -> None:
        case, known, world = self.case, self.known, self.known.world
        path = case.path_parameters
        if path and _positive(case, ParameterLocation.PATH):
            choices = {
                # Changing an exam may deactivate it: a separate one is changed.
                "exam_id": [known.changed_exam if case.method == "PATCH" else world.exam],
                # Archiving one attempt leaves the other to be read and asked for transitions.
                "attempt_id": [known.doomed if case.method == "DELETE" else known.attempt],
                "transition_id": [known.transition],
                "user_id": [world.learner, world.staff],
                "course_id": [world.course],
                "content_id": [known.content],
            }
            for name, known_values in choices.items():
                if name in path:
                    path[name] = self.pick(name, path[name], known_values)
        body = case.body
        if isinstance(body, dict) and _positive(case, ParameterLocation.BODY):
            # A learner with no attempt yet (201), then with one (409); a known course.
            if isinstance(body.get("user_id"), int):
                body["user_id"] = self.pick("body.user_id", body["user_id"], [world.other])
            if isinstance(body.get("course_id"), str):
                body["course_id"] = self.pick("body.course_id", body["course_id"], [world.course])
        query = case.query
        if query and "wait" in query:
            # No worker runs here: a pending transition would be waited on for all of ?wait=.
            try:
                wait = float(query["wait"])
            except (TypeError, ValueError):
                return
            if 0 <= wait <= 30:
                query["wait"] = min(wait, 0.01)

    def vendor_route(self) -> str:
        """The provider to sign as: a configured one unless the path was made invalid."""
        case, known = self.case, self.known
        path = case.path_parameters
        provider = str(path.get("provider", ""))
        if not _positive(case, ParameterLocation.PATH):
            return provider
        provider = PROVIDERS[zlib.crc32(provider.encode()) % len(PROVIDERS)]
        path["provider"] = provider
        if "external_id" in path:
            path["external_id"] = self.pick(
                "external_id", path["external_id"], known.vendor_external_ids[provider]
            )
        body = case.body
        if isinstance(body, dict) and _positive(case, ParameterLocation.BODY):
            for name, known_values in (
                ("attempt_code", known.vendor_codes[provider]),
                ("external_id", known.vendor_external_ids[provider]),
                ("status", WORDS[provider]),
            ):
                if isinstance(body.get(name), str):
                    body[name] = self.pick(name, body[name], known_values)
        return provider


def _body_bytes(body: Any) -> bytes:
    """The bytes the JSON transport would send for this body (and that are signed)."""
    if isinstance(body, NotSet):
        return b""
    if isinstance(body, bytes):
        return body
    if body is None:
        return b"null"
    return json.dumps(body, allow_nan=False).encode()


def _positive(case: Any, location: ParameterLocation) -> bool:
    return case.meta is None or not case.meta.is_negative_at(location)


def _signed(case: Any, provider: str) -> tuple[dict[str, str], dict[str, Any]]:
    """Headers and body for a vendor route: the body's exact bytes, signed as the provider."""
    if not _positive(case, ParameterLocation.HEADER) or provider not in PROVIDERS:
        return {}, {}  # as generated: unsigned, or an unknown provider
    raw = _body_bytes(case.body)
    webhook_id = f"msg_{uuid.uuid4().hex}"
    timestamp = str(int(time.time()))
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": sign(webhook_secret(provider), webhook_id, timestamp, raw),
    }
    return headers, {"data": raw}


def sign(secret: str, webhook_id: str, timestamp: str, raw: bytes) -> str:
    """Standard Webhooks v1 over any bytes (the library's own signer takes text only)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + raw, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_api(case: Any, known: Known) -> None:
    swaps = Swaps(case, known)
    if case.path.startswith("/v1/providers/"):
        headers, body = _signed(case, swaps.vendor_route())
    else:
        swaps.user_route()
        headers, body = bearer(known.admin, staff=True), {}
    case.call_and_validate(headers=headers, excluded_checks=EXCLUDED_CHECKS, **body)
