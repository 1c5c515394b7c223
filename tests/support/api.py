"""Driving the API in-process: a World made through the API itself, fresh user ids, and the
broker's queues as an operator would see them."""

from __future__ import annotations

import itertools
import json
import os
import uuid
from typing import Any

import redis
from fastapi.testclient import TestClient

from tests.support.tokens import bearer

_ids = itertools.count(1)


def new_id() -> int:
    return 50_000_000 + os.getpid() % 1000 * 10_000 + next(_ids)


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
