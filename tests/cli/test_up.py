"""The README's quick start, as written: `./run` on the embedded default, then a learner's
exam through the API (`status` shows nothing pending, the e-mail file is there), then
`proctorq demo`, which takes attempts through the sandbox vendor's reviews to `verified` with
credit and e-mail. `up` is quiet: its summary, then warnings and errors only. Ctrl-C and
SIGTERM stop every process `up` started, and `up` says so."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import jwt
import pytest

from tests.support.processes import alive, descendants, nothing_configured, wait_until
from tests.support.servers import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def start(
    tmp_path: Path, *, verbose: bool = False, **configured: str
) -> tuple[subprocess.Popen[bytes], str, dict[str, str], Path]:
    var = tmp_path / "var"
    env = nothing_configured(var) | configured
    port = free_port()
    log = (tmp_path / "up.log").open("wb")
    process = subprocess.Popen(
        [str(ROOT / "run"), "--port", str(port), *(["--verbose"] if verbose else [])],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return process.poll() is not None

    wait_until(up, timeout=120, what="./run to answer")
    assert process.poll() is None, (tmp_path / "up.log").read_text()
    return process, url, env, var


def test_the_quick_start_works_as_written(tmp_path: Path) -> None:
    process, url, env, var = start(tmp_path)
    try:
        printed = (tmp_path / "up.log").read_text()
        for fact in (f"{url}/docs", "JWT secret", str(var / "mail"), "Ctrl-C", "sandbox"):
            assert fact in printed, fact
        secret = (var / "jwt-secret").read_text().strip()
        assert secret in printed
        report = a_learner_takes_an_exam(url, secret, env)
        assert report["broker"] == "embedded"
        mails = list((var / "mail").glob("*.eml"))
        assert len(mails) == 1
        assert "u7@example.test" in mails[0].read_text()

        demo = subprocess.run(
            [str(ROOT / ".venv/bin/proctorq"), "demo", "--url", url],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "reviews by sandbox" in demo.stdout, demo.stdout
        assert "verified" in demo.stdout and "[expected" not in demo.stdout, demo.stdout
        assert "midterm: satisfied" in demo.stdout, demo.stdout
        sent = re.search(r"E-mails: (\d+) written to .* \(expected (\d+)\)", demo.stdout)
        assert sent and sent[1] == sent[2] and int(sent[1]) > 0, demo.stdout
        assert "Everything reached its final state." in demo.stdout
    finally:
        stop_and_check(process, signal.SIGTERM)
    printed = (tmp_path / "up.log").read_text()
    # Quiet by default: no Celery banner, no log line of the parts below a warning.
    for noise in ("celery@", "[config]", "INFO", "beat: Starting", "Uvicorn running"):
        assert noise not in printed, printed
    assert "proctorq: stopping" in printed and printed.rstrip().endswith("proctorq: stopped.")


def test_up_verbose_shows_the_parts_logs(tmp_path: Path) -> None:
    process, _, _, _ = start(tmp_path, verbose=True)
    try:
        wait_until(
            lambda: "ready" in (tmp_path / "up.log").read_text(),
            timeout=60,
            what="the worker's ready line",
        )
    finally:
        stop_and_check(process, signal.SIGTERM)


def test_up_runs_the_same_way_on_postgresql_and_redis(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    secret = "a-configured-secret-of-the-lms-0123456789"
    process, url, env, var = start(
        tmp_path,
        PROCTORQ_DATABASE_URL=postgres_url,
        PROCTORQ_BROKER_URL=redis_url,
        PROCTORQ_JWT_SECRET=secret,
    )
    try:
        printed = (tmp_path / "up.log").read_text()
        assert "postgresql" in printed and "redis://" in printed, printed
        assert secret not in printed, "a configured secret is never printed"
        assert "PROCTORQ_JWT_ISSUER and PROCTORQ_JWT_AUDIENCE are not both set" in printed
        assert not (var / "jwt-secret").exists()
        report = a_learner_takes_an_exam(url, secret, env)
        assert report["broker"] == "external"
        assert report["queues"], report
        assert len(list((var / "mail").glob("*.eml"))) == 1
    finally:
        stop_and_check(process, signal.SIGTERM)


def a_learner_takes_an_exam(url: str, secret: str, env: dict[str, str]) -> dict[str, object]:
    """Staff create an exam; learner 7 starts and submits it. Returns `status --json` once
    nothing is pending any more."""

    def token(user_id: int, staff: bool = False) -> dict[str, str]:
        claims = {
            "user_id": user_id,
            "preferred_username": f"u{user_id}",
            "email": f"u{user_id}@example.test",
            "administrator": staff,
            "exp": int(time.time()) + 600,
        }
        return {"Authorization": f"Bearer {jwt.encode(claims, secret, algorithm='HS256')}"}

    api = httpx.Client(base_url=url, timeout=30)
    exam = api.post(
        "/v1/exams",
        headers=token(1, staff=True),
        json={
            "course_id": "course-v1:Quick+Start+2026",
            "content_id": "block-v1:final",
            "exam_name": "Final",
            "time_limit_mins": 60,
        },
    )
    assert exam.status_code == 201, exam.text
    attempt = api.post(f"/v1/exams/{exam.json()['exam_id']}/attempts", headers=token(7), json={})
    assert attempt.status_code == 201, attempt.text
    for status in ("started", "submitted"):
        posted = api.post(
            f"/v1/attempts/{attempt.json()['attempt_id']}/transitions",
            headers=token(7),
            json={"to_status": status},
        )
        final = api.get(
            f"/v1/transitions/{posted.json()['transition_id']}",
            params={"wait": 30},
            headers=token(7),
        )
        assert final.json()["state"] == "applied", final.text

    def report() -> dict[str, object]:
        out = subprocess.run(
            [str(ROOT / ".venv/bin/proctorq"), "status", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return dict(json.loads(out.stdout))

    wait_until(lambda: report()["pending_follow_ups"] == 0, timeout=60, what="follow-ups")
    final_report = report()
    assert final_report["pending_transitions"] == 0
    assert final_report["failed_transitions"] == 0
    return final_report


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_stopping_leaves_no_process_behind(tmp_path: Path, how: str) -> None:
    process, _, _, _ = start(tmp_path)
    stop_and_check(process, signal.SIGINT if how == "ctrl-c" else signal.SIGTERM, how == "ctrl-c")


def stop_and_check(process: subprocess.Popen[bytes], signum: int, group: bool = False) -> None:
    family = descendants(process.pid)
    assert len(family) >= 3 or process.poll() is not None  # api, worker (+ pool), beat
    if group:
        os.killpg(process.pid, signum)  # a terminal's Ctrl-C reaches the whole foreground group
    else:
        process.send_signal(signum)
    assert process.wait(60) == 0
    wait_until(
        lambda: not any(alive(pid) for pid in family), timeout=30, what="every child of up to stop"
    )
