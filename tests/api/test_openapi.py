"""The OpenAPI document is the contract an LMS integrator or a vendor reads: every route is in
it, with a summary, an example of its body, its error answers and how to authenticate."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from api.app import create_app
from api.routes import attempts, courses, edx, exams, health, transitions, users, vendors
from config import get_settings
from proctoring.db import UnitOfWork

HTTP_METHODS = ("get", "put", "post", "patch", "delete", "head", "options", "trace")
USER = "user"
VENDOR = "vendor"
PUBLIC = "public"
# edx-proctoring's protocol: a vendor's JWT, answers as edx-proctoring gives them.
EDX = "edx-rest vendor"
TOKEN = "oauth2 client"
EDX_CALLBACK = "/api/edx_proctoring/v1/proctored_exam/attempt/{external_id}"

# Every operation, who calls it, and the errors (beyond 400/413/422) it must document.
OPERATIONS: dict[tuple[str, str], tuple[str, set[int]]] = {
    ("post", "/v1/exams"): (USER, {401, 403, 404, 409}),
    ("patch", "/v1/exams/{exam_id}"): (USER, {401, 403, 404}),
    ("get", "/v1/exams/{exam_id}"): (USER, {401, 404}),
    ("get", "/v1/courses/{course_id}/exams"): (USER, {401}),
    ("get", "/v1/courses/{course_id}/exams/{content_id}"): (USER, {401, 404}),
    ("put", "/v1/courses/{course_id}"): (USER, {401, 403}),
    ("put", "/v1/courses/{course_id}/staff/{user_id}"): (USER, {401, 403}),
    ("delete", "/v1/courses/{course_id}/staff/{user_id}"): (USER, {401, 403}),
    ("post", "/v1/exams/{exam_id}/attempts"): (USER, {401, 403, 404, 409}),
    ("get", "/v1/attempts/{attempt_id}"): (USER, {401, 403, 404}),
    ("delete", "/v1/attempts/{attempt_id}"): (USER, {401, 403, 404}),
    ("post", "/v1/attempts/{attempt_id}/transitions"): (USER, {401, 403, 404, 409}),
    ("get", "/v1/attempts/{attempt_id}/transitions"): (USER, {401, 403, 404}),
    ("get", "/v1/transitions/{transition_id}"): (USER, {401, 403, 404}),
    ("post", "/v1/providers/{provider}/reviews"): (VENDOR, {401, 404}),
    ("post", "/v1/providers/{provider}/attempts/{external_id}/ready"): (VENDOR, {401, 404}),
    ("put", "/v1/users/{user_id}"): (USER, {401, 403}),
    ("get", "/v1/users/{user_id}/credit"): (USER, {401, 403}),
    ("post", "/oauth2/access_token"): (TOKEN, {400, 401}),
    ("post", EDX_CALLBACK + "/ready"): (EDX, {401, 403, 404}),
    ("post", EDX_CALLBACK + "/reviewed"): (EDX, {400, 401, 403, 412}),
    ("get", "/healthz"): (PUBLIC, set()),
    ("get", "/readyz"): (PUBLIC, set()),
}
WEBHOOK_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


def _unbound() -> Any:
    raise AssertionError("the document is served without touching the database")


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(get_settings(), uow=UnitOfWork(_unbound))


@pytest.fixture(scope="module")
def http(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def document(http: TestClient) -> dict[str, Any]:
    response = http.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield method, path, operation


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = document["components"]["schemas"][name]
    return schema


def test_every_route_is_described(http: TestClient, document: dict[str, Any]) -> None:
    documented = {(method, path) for method, path, _ in operations(document)}
    assert documented == set(OPERATIONS)
    # What the app serves is what the document says, method by method (a 405 lists them).
    for path in document["paths"]:
        concrete = path.format(
            exam_id=7,
            course_id="course-v1:edX+DemoX+Demo_Course",
            content_id="block",
            user_id=42,
            attempt_id=12,
            transition_id=1001,
            provider="acme",
            external_id="session-1",
        )
        response = http.request("OPTIONS", concrete)
        assert response.status_code == 405, path
        assert response.json()["detail"], path
        served = {m.strip().lower() for m in response.headers["allow"].split(",")}
        assert served == set(document["paths"][path]), path


def test_every_operation_has_a_summary_and_a_tag(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        assert operation.get("summary", "").strip(), (method, path)
        assert operation.get("tags"), (method, path)


def test_every_body_has_an_example_that_is_valid(document: dict[str, Any]) -> None:
    bodies = 0
    for method, path, operation in operations(document):
        if "requestBody" not in operation:
            continue
        bodies += 1
        content = operation["requestBody"]["content"]
        if "application/json" not in content:  # the token's form: RFC 6749's, not ours
            assert content["application/x-www-form-urlencoded"]["example"], (method, path)
            continue
        media = content["application/json"]
        examples = [e["value"] for e in media.get("examples", {}).values()]
        if "example" in media:
            examples.append(media["example"])
        assert examples, f"{method.upper()} {path} has a body but no example of it"
        model = _body_model(method, path)
        for example in examples:
            TypeAdapter(model).validate_python(example)
    assert bodies == 9


def _body_model(method: str, path: str) -> Any:
    """The model a route validates its body with, as FastAPI knows it."""
    for route in _api_routes():
        if route.path == path and method.upper() in route.methods:
            assert route.body_field is not None
            return route.body_field.field_info.annotation
    raise AssertionError(f"no route for {method} {path}")


def _api_routes() -> list[APIRoute]:
    return [
        route
        for router in (
            *(m.router for m in (attempts, courses, exams, health, transitions, users, vendors)),
            edx.callbacks,
        )
        for route in router.routes
        if isinstance(route, APIRoute)
    ]


def test_error_answers_are_documented_as_a_sentence(document: dict[str, Any]) -> None:
    problem = resolve(document, {"$ref": "#/components/schemas/Problem"})
    assert problem["type"] == "object"
    assert problem["required"] == ["detail"]
    assert problem["properties"]["detail"]["type"] == "string"
    for method, path, operation in operations(document):
        who, expected = OPERATIONS[(method, path)]
        documented = {int(code) for code in operation["responses"] if code[0] in "45"}
        if who in (USER, VENDOR):
            expected = expected | {400, 413, 422, 503}
        elif who == EDX:  # a body that is not valid is a 400, as edx-proctoring has it
            expected = expected | {400, 413, 503}
        assert expected <= documented, (method, path, sorted(expected - documented))
        for code in documented:
            if (path, code) == ("/readyz", 503):
                continue  # says which of the database and the broker is away
            if who == TOKEN or (path, code) == (EDX_CALLBACK + "/reviewed", 412):
                # RFC 6749 §5.2's `{"error"}`, and edx-proctoring's bare string
                example = operation["responses"][str(code)]["content"]["application/json"]
                assert example["example"], (method, path, code)
                continue
            answer = operation["responses"][str(code)]
            assert answer.get("description"), (method, path, code)
            media = answer["content"]["application/json"]
            assert resolve(document, media["schema"]) == problem, (method, path, code)
            example = media.get("example")
            assert isinstance(example, dict), (method, path, code)
            assert isinstance(example["detail"], str) and example["detail"], (method, path)


def test_user_routes_say_how_to_authenticate(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["type"] == "http"
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    assert "user_id" in schemes["HTTPBearer"]["description"]
    for method, path, operation in operations(document):
        who, _ = OPERATIONS[(method, path)]
        security = operation.get("security", [])
        if who == USER:
            assert {"HTTPBearer": []} in security, (method, path)
        elif who == EDX:
            assert {"VendorJWT": []} in security, (method, path)
        else:
            assert security == [], (method, path)


def test_vendor_routes_document_the_webhook_headers_and_the_signing(
    document: dict[str, Any],
) -> None:
    vendor_operations = [
        (method, path, operation)
        for method, path, operation in operations(document)
        if OPERATIONS[(method, path)][0] == VENDOR
    ]
    assert len(vendor_operations) == 2
    for method, path, operation in vendor_operations:
        headers = {
            parameter["name"]: parameter
            for parameter in operation["parameters"]
            if parameter["in"] == "header"
        }
        assert set(headers) == set(WEBHOOK_HEADERS), (method, path)
        for name in WEBHOOK_HEADERS:
            assert headers[name]["required"] is True, (method, path, name)
            assert headers[name]["schema"]["type"] == "string", (method, path, name)
            assert headers[name].get("description"), (method, path, name)
        description = operation["description"]
        for words in (
            "Standard Webhooks",
            "HMAC-SHA256",
            "whsec_",
            "5 minutes",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
        ):
            assert words in description, (method, path, words)
        provider = next(p for p in operation["parameters"] if p["name"] == "provider")
        assert provider["in"] == "path" and provider.get("description")


def test_the_api_is_introduced(document: dict[str, Any]) -> None:
    info = document["info"]
    assert info["title"] == "proctorq"
    for words in ("Authorization: Bearer", "Standard Webhooks", '{"detail"'):
        assert words in info["description"]
    tags = {tag["name"] for tag in document["tags"]}
    used = {tag for _, _, operation in operations(document) for tag in operation["tags"]}
    assert used <= tags


def test_docs_are_served(http: TestClient) -> None:
    response = http.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger" in response.text.lower()
    assert "/openapi.json" in response.text
    redoc = http.get("/redoc")
    assert redoc.status_code == 200
    assert redoc.headers["content-type"].startswith("text/html")


def test_the_docs_pages_need_no_internet(http: TestClient) -> None:
    """Every script and style the pages load comes from the app itself: no CDN."""
    for page in ("/docs", "/redoc"):
        html = http.get(page).text
        assets = re.findall(r'(?:src|href)=["\']([^"\']+)["\']', html)
        assets += re.findall(r'url: ["\']([^"\']+)["\']', html)
        assert assets, html
        for asset in assets:
            assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
            if asset.endswith((".js", ".css", ".png")):
                loaded = http.get(asset)
                assert loaded.status_code == 200, asset
                assert len(loaded.content) > 1000, asset
    bundle = http.get("/static-offline-docs/swagger-ui-bundle.js").text
    # Swagger UI 5 renders OpenAPI 3.1, the version FastAPI writes.
    assert http.get("/openapi.json").json()["openapi"].startswith("3.1")
    assert re.search(r'"5\.\d+\.\d+"', bundle)
