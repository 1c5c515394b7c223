"""mockprock, the edx reference vendor, unchanged, takes a learner from registration to
`verified` through proctorq: its own server, speaking edx-proctoring's REST protocol both ways,
against proctorq's API, worker and scheduler on PostgreSQL and Redis."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import mockprock
from tests.support.environment import PROVIDERS
from tests.support.processes import Stack, stack, wait_until
from tests.support.servers import SMTPServer, free_port
from tests.support.tokens import bearer

pytestmark = pytest.mark.skipif(
    not mockprock.available(),
    reason=f"mockprock's source is not at {mockprock.SOURCE} (set PROCTORQ_MOCKPROCK_DIR)",
)

CALLBACK_CLIENT = "mockprock-callbacks"
CALLBACK_SECRET = "a-callback-secret-proctorq-issued-to-mockprock"


class Mockprock:
    """mockprock's server, and its own API as a vendor's staff would read it."""

    def __init__(self, url: str) -> None:
        self.url = url
        # mockprock issues a token to any client whose secret is its id + "secret".
        answer = httpx.post(
            f"{url}/oauth2/access_token",
            data={
                "grant_type": "client_credentials",
                "client_id": "reader",
                "client_secret": "readersecret",
                "token_type": "jwt",
            },
        ).json()
        self.headers = {"Authorization": f"JWT {answer['access_token']}"}

    def get(self, path: str) -> Any:
        return httpx.get(f"{self.url}{path}", headers=self.headers, timeout=5).json()


@pytest.fixture
def journey(
    tmp_path: Path, postgres_url: str, redis_url: str, smtp: SMTPServer
) -> Iterator[tuple[Stack, str, Mockprock]]:
    interpreter = mockprock.python()
    vendor_port, api_port = free_port(), free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    providers = {
        **PROVIDERS,
        "mockprock": {
            "protocol": "edx-rest",
            "base_url": f"http://127.0.0.1:{vendor_port}",
            # mockprock's rule for its clients: the secret is the id + "secret".
            "client_id": "proctorq",
            "client_secret": "proctorqsecret",
            "callback_clients": {CALLBACK_CLIENT: CALLBACK_SECRET},
        },
    }
    folder = tmp_path / "mockprock"
    folder.mkdir()
    log = (folder / "mockprock.log").open("wb")
    server = subprocess.Popen(
        [
            str(interpreter),
            str(mockprock.SOURCE / "run.py"),
            "--port",
            str(vendor_port),
            "--lms",
            api_url,
            "--client-id",
            CALLBACK_CLIENT,
            "--client-secret",
            CALLBACK_SECRET,
        ],
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        with stack(
            tmp_path / "proctorq",
            postgres_url,
            redis_url,
            PROCTORQ_SMTP_URL=smtp.url,
            PROCTORQ_PROVIDERS=json.dumps(providers),
            PROCTORQ_PUBLIC_URL=api_url,
        ) as running:
            running.start_api(port=api_port)
            running.start_worker()
            running.start_beat()
            wait_until(
                lambda: _answers(f"http://127.0.0.1:{vendor_port}"), timeout=30, what="mockprock"
            )
            yield running, api_url, Mockprock(f"http://127.0.0.1:{vendor_port}")
    finally:
        server.terminate()
        server.wait(10)
        log.close()
        print((folder / "mockprock.log").read_text()[-4000:])


def _answers(url: str) -> bool:
    try:
        httpx.get(f"{url}/api/v1/config/", timeout=1)  # 500 without a token: it listens
    except httpx.HTTPError:
        return False
    return True


def test_mockprock_takes_a_learner_from_registration_to_verified(
    journey: tuple[Stack, str, Mockprock], smtp: SMTPServer
) -> None:
    _, api, vendor = journey
    admin, learner = bearer(1, staff=True), bearer(77_001)
    course = "course-v1:edX+Mockprock+2026"
    http = httpx.Client(base_url=api, timeout=10)
    ok = http.put(
        "/v1/users/77001", headers=admin, json={"username": "ada", "email": "ada@example.test"}
    )
    assert ok.status_code == 200, ok.text
    assert http.put(f"/v1/courses/{course}", headers=admin, json={"name": "Mocks"}).is_success
    exam = http.post(
        "/v1/exams",
        headers=admin,
        json={
            "course_id": course,
            "content_id": "block-v1:final",
            "exam_name": "Final",
            "time_limit_mins": 60,
            "provider": "mockprock",
        },
    ).json()
    created = http.post(
        f"/v1/exams/{exam['exam_id']}/attempts", headers=learner, json={"taking_as_proctored": True}
    )
    assert created.status_code == 201, created.text
    attempt_url = f"/v1/attempts/{created.json()['attempt_id']}"

    def attempt() -> dict[str, Any]:
        return dict(http.get(attempt_url, headers=admin).json())

    # Registered at mockprock, the exam first: its ids are our external ids.
    wait_until(
        lambda: attempt()["external_id"] is not None, timeout=60, what="the attempt's registration"
    )
    exam_ext = http.get(f"/v1/exams/{exam['exam_id']}", headers=admin).json()["external_id"]
    session = attempt()["external_id"]
    assert vendor.get(f"/api/v1/exam/{exam_ext}/")["course_id"] == course
    at_vendor = vendor.get(f"/api/v1/exam/{exam_ext}/attempt/{session}/")
    assert at_vendor["status"] == "created"
    assert at_vendor["lms_host"] == api

    # The learner "downloads the software": mockprock calls "ready" two seconds later.
    httpx.get(f"{vendor.url}/download", params={"attempt": session, "exam": exam_ext})
    wait_until(
        lambda: attempt()["status"] == "ready_to_start", timeout=60, what="mockprock's ready"
    )

    def move(status: str) -> None:
        answer = http.post(
            f"{attempt_url}/transitions", headers=learner, json={"to_status": status}
        )
        assert answer.status_code == 202, answer.text
        wait_until(
            lambda: attempt()["status"] == status, timeout=60, what=f"the attempt to be {status}"
        )

    move("started")
    wait_until(
        lambda: vendor.get(f"/api/v1/exam/{exam_ext}/attempt/{session}/")["status"] == "started",
        timeout=60,
        what="mockprock to hear of the start",
    )
    # Submitted: mockprock posts its review ten seconds later.
    move("submitted")
    try:
        wait_until(lambda: attempt()["status"] == "verified", timeout=60, what="mockprock's review")
    except AssertionError:  # what the attempt went through, for whoever reads the failure
        print(http.get(f"{attempt_url}/transitions", headers=admin).json())
        raise

    def credit() -> list[str]:
        found = http.get("/v1/users/77001/credit", headers=admin, params={"course_id": course})
        return [c["status"] for c in found.json()]

    # Credit is a follow-up of the status change: it lands a moment after `verified`.
    wait_until(lambda: credit() == ["satisfied"], timeout=60, what="the credit to be satisfied")
    wait_until(lambda: len(smtp.messages) == 2, timeout=60, what="the two e-mails")
    assert len({m["To"] for m in smtp.messages}) == 1
