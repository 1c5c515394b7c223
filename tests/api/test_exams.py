"""Exams and courses through the API, with the course staff rule."""

from __future__ import annotations

import uuid

import pytest

from tests.support.api import World, new_id
from tests.support.tokens import bearer


def test_course_staff_create_and_others_may_read(world: World) -> None:
    body = {
        "course_id": world.course,
        "content_id": "block-v1:final",
        "exam_name": "Final",
        "time_limit_mins": 90,
        "due_date": "2026-12-24T12:00:00+01:00",
    }
    created = world.client.post("/v1/exams", json=body, headers=bearer(world.staff))
    assert created.status_code == 201, created.text
    exam = created.json()
    assert exam["provider"] == "acme" and exam["is_proctored"] and not exam["is_practice_exam"]
    assert exam["due_date"] == "2026-12-24T11:00:00Z"
    read = world.client.get(f"/v1/exams/{exam['exam_id']}", headers=bearer(world.learner))
    assert read.json() == exam
    by_content = world.client.get(
        f"/v1/courses/{world.course}/exams/block-v1:final", headers=bearer(world.other)
    )
    assert by_content.json()["exam_id"] == exam["exam_id"]
    again = world.client.post("/v1/exams", json=body, headers=bearer(world.staff))
    assert again.status_code == 409
    assert "already exists" in again.json()["detail"]


def test_global_staff_may_create_anywhere(world: World) -> None:
    body = {
        "course_id": f"course-v1:proctorq+{uuid.uuid4().hex[:8]}+2026",
        "content_id": "block-v1:x",
        "exam_name": "X",
        "time_limit_mins": 10,
    }
    response = world.client.post("/v1/exams", json=body, headers=bearer(new_id(), staff=True))
    assert response.status_code == 201


def test_staff_of_another_course_may_not(world: World) -> None:
    body = {
        "course_id": "course-v1:someone+else+2026",
        "content_id": "block-v1:x",
        "exam_name": "X",
        "time_limit_mins": 10,
    }
    response = world.client.post("/v1/exams", json=body, headers=bearer(world.staff))
    assert response.status_code == 403
    assert response.json()["detail"] == "Must be a Staff User to Perform this request."


def test_patch_changes_only_the_given_fields(world: World) -> None:
    patched = world.client.patch(
        f"/v1/exams/{world.exam}", json={"is_active": False}, headers=bearer(world.staff)
    )
    assert patched.status_code == 200
    assert patched.json()["is_active"] is False and patched.json()["exam_name"] == "Final"
    assert (
        world.client.patch(
            f"/v1/exams/{world.exam}", json={"exam_name": "Nope"}, headers=bearer(world.learner)
        ).status_code
        == 403
    )
    missing = world.client.patch("/v1/exams/2147483000", json={}, headers=bearer(world.staff))
    assert missing.status_code == 404
    unknown = world.client.patch(
        f"/v1/exams/{world.exam}", json={"colour": "red"}, headers=bearer(world.staff)
    )
    assert unknown.status_code == 422 and "colour" in unknown.json()["detail"]


def test_listing_a_course(world: World) -> None:
    practice = world.new_exam(is_practice_exam=True)
    inactive = world.new_exam(is_active=False)
    url = f"/v1/courses/{world.course}/exams"
    every = {e["exam_id"] for e in world.client.get(url, headers=bearer(world.learner)).json()}
    assert {world.exam, practice, inactive} == every
    active = world.client.get(url + "?active_only=true", headers=bearer(world.learner)).json()
    assert inactive not in {e["exam_id"] for e in active}
    practice_only = world.client.get(url + "?practice=true", headers=bearer(world.learner))
    assert [e["exam_id"] for e in practice_only.json()] == [practice]


def test_an_unknown_provider_is_422(world: World) -> None:
    body = {
        "course_id": world.course,
        "content_id": "block-v1:p",
        "exam_name": "P",
        "time_limit_mins": 5,
        "provider": "nobody",
    }
    response = world.client.post("/v1/exams", json=body, headers=bearer(world.staff))
    assert response.status_code == 422 and "nobody" in response.json()["detail"]


def test_courses_staff_and_users(world: World) -> None:
    admin = bearer(world.admin, staff=True)
    course = world.client.put(
        f"/v1/courses/{world.course}",
        json={"name": "Rockets", "contact_url": "https://x.test"},
        headers=bearer(world.staff),
    )
    assert course.json() == {
        "course_id": world.course,
        "name": "Rockets",
        "contact_url": "https://x.test",
    }
    assert (
        world.client.put(
            f"/v1/courses/{world.course}/staff/{world.other}", headers=bearer(world.staff)
        ).status_code
        == 403
    )  # only global staff grant
    assert (
        world.client.put(
            f"/v1/courses/{world.course}/staff/{world.other}", headers=admin
        ).status_code
        == 200
    )
    assert (
        world.client.put(
            f"/v1/courses/{world.course}", json={"name": "By other"}, headers=bearer(world.other)
        ).status_code
        == 200
    )
    assert (
        world.client.delete(
            f"/v1/courses/{world.course}/staff/{world.other}", headers=admin
        ).status_code
        == 204
    )
    assert (
        world.client.put(
            f"/v1/courses/{world.course}", json={"name": "Again"}, headers=bearer(world.other)
        ).status_code
        == 403
    )
    user = world.client.put(
        f"/v1/users/{world.other}",
        json={"username": "renamed", "email": "renamed@example.test"},
        headers=admin,
    )
    assert user.json()["username"] == "renamed"
    bad = world.client.put(
        f"/v1/users/{world.other}",
        json={"username": "x", "email": "not-an-address"},
        headers=admin,
    )
    assert bad.status_code == 422
    assert (
        world.client.put(
            f"/v1/users/{world.other}",
            json={"username": "x", "email": "x@y.z"},
            headers=bearer(world.staff),
        ).status_code
        == 403
    )


@pytest.mark.parametrize(
    "link",
    [
        "javascript:alert(1)",
        "data:text/html,<b>x</b>",
        "file:///etc/passwd",
        "ftp://example.test/",
        "example.test/contact",
        "https:example.test",
        "https://",
        "mailto:",
        "https://example.test/a b",
        "https://example.test/\nBcc: x@y.z",
    ],
)
def test_a_contact_link_is_https_http_or_mailto(world: World, link: str) -> None:
    answer = world.client.put(
        f"/v1/courses/{world.course}",
        headers=bearer(world.staff),
        json={"name": "Rockets", "contact_url": link},
    )
    assert answer.status_code == 422, answer.text
    assert "https://, http:// or mailto:" in answer.json()["detail"]


@pytest.mark.parametrize(
    "link", ["https://example.test/help", "HTTP://example.test", "mailto:help@example.test"]
)
def test_contact_links_that_are_accepted(world: World, link: str) -> None:
    answer = world.client.put(
        f"/v1/courses/{world.course}",
        headers=bearer(world.staff),
        json={"name": "Rockets", "contact_url": link},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["contact_url"] == link
