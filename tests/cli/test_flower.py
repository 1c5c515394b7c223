"""`proctorq flower` for real: Flower on Redis sees our tasks by name, queue and ids only."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.flower import basic_auth_entries, is_loopback
from tests.support import scenario
from tests.support.databases import REDIS_URL
from tests.support.events import receivers_setting
from tests.support.processes import Process, stack, wait_until
from tests.support.servers import HTTPEndpoint, free_port
from workers import routing
from workers.routing import ROUTES

pytestmark = pytest.mark.integration

AUTH = ("ops", "secret-word")
OURS = (
    routing.APPLY_TRANSITIONS,
    routing.UPDATE_CREDIT,
    routing.SEND_STATUS_EMAIL,
    routing.DELIVER_EVENTS,
)


def _answers(url: str, flower: Process) -> bool:
    if not flower.alive():
        return True
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _tasks(base: str) -> dict[str, dict[str, Any]]:
    response = httpx.get(f"{base}/api/tasks", auth=AUTH, timeout=5)
    assert response.status_code == 200, response.text
    found: dict[str, dict[str, Any]] = response.json()
    return found


def _ids_only(args: str) -> list[int]:
    """Flower shows a task's args as their repr: ours must be one list of integer ids."""
    assert "@" not in args, args
    value = ast.literal_eval(args)
    assert isinstance(value, list) and len(value) == 1, args
    (ids,) = value
    assert isinstance(ids, list) and ids, args
    assert all(isinstance(i, int) and not isinstance(i, bool) for i in ids), args
    return ids


def test_flower_shows_each_task_by_name_queue_and_ids(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with (
        HTTPEndpoint() as receiver,
        stack(
            tmp_path,
            postgres_url,
            redis_url,
            PROCTORQ_FLOWER_BASIC_AUTH=":".join(AUTH),
            PROCTORQ_EVENT_WEBHOOKS=receivers_setting(("lms", receiver)),
        ) as running,
    ):
        flower = running.spawn("flower", "flower", "--port", str(port), "--address", "127.0.0.1")
        wait_until(lambda: _answers(f"{base}/healthcheck", flower), what="Flower to answer")
        assert flower.alive(), flower.text()[-3000:]
        running.start_worker()
        running.start_beat()
        # Flower's own metrics count a worker as online from its events: once they show one,
        # Flower is subscribed and will see the task events we cause from here on.
        wait_until(
            lambda: re.search(r'flower_worker_online\{worker="[^"]+"\} 1\.0', _metrics(base)),
            timeout=30,
            what="Flower to receive the worker's events",
        )

        _, _, (seat,) = scenario.course(running)
        ids = [
            scenario.record(running, seat, "started"),
            scenario.record(running, seat, "submitted"),
        ]
        scenario.wait_final(running, ids)
        wait_until(lambda: scenario.nothing_pending(running), what="the follow-ups")

        def ours_succeeded() -> dict[str, dict[str, Any]]:
            tasks = _tasks(base)
            done = {t["name"] for t in tasks.values() if t["state"] == "SUCCESS"}
            # Appliers send no worker events (tasks/apply.py): Flower has only their task-sent
            # event, and calls such a task PENDING.
            sent = {t["name"] for t in tasks.values() if t["state"] == "PENDING"}
            ok = set(OURS) - {routing.APPLY_TRANSITIONS} <= done
            return tasks if ok and routing.APPLY_TRANSITIONS in sent else {}

        tasks = wait_until(ours_succeeded, timeout=30, what="Flower to list our tasks")

        # The maintenance ticks ran (the beat is up, the follow-ups were relayed) but send no
        # events: Flower's history is the real work.
        assert not {t["name"] for t in tasks.values()} & set(routing.MAINTENANCE), tasks
        seen_ids: set[int] = set()
        for task in tasks.values():
            assert task["name"] in ROUTES, task
            assert task["routing_key"] == ROUTES[task["name"]], task
            assert task["kwargs"] in ("{}", {}), task
            ids_in_task = _ids_only(task["args"])
            if task["name"] == routing.APPLY_TRANSITIONS:
                seen_ids.update(ids_in_task)
        assert set(ids) <= seen_ids
        queues = {t["name"]: t["routing_key"] for t in tasks.values()}
        assert queues[routing.DELIVER_EVENTS] == "events"
        assert receiver.received, "the events were delivered"
        assert queues[routing.APPLY_TRANSITIONS] == "transitions"
        assert queues[routing.UPDATE_CREDIT] == "credit"
        assert queues[routing.SEND_STATUS_EMAIL] == "email"

        assert httpx.get(f"{base}/api/tasks", timeout=5).status_code == 401
        wrong = httpx.get(f"{base}/api/tasks", auth=("ops", "guess"), timeout=5)
        assert wrong.status_code == 401
        assert "secret-word" not in flower.text()


def _metrics(base: str) -> str:
    try:
        return httpx.get(f"{base}/metrics", timeout=2).text
    except httpx.HTTPError:
        return ""


def _flower(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PROCTORQ_FLOWER_BASIC_AUTH", "FLOWER_UNAUTHENTICATED_API")
    }
    environment.update(PROCTORQ_VAR_DIR=str(tmp_path / "var"), **env)
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "flower", *argv],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_flower_on_the_embedded_broker_says_why_and_exits_2(tmp_path: Path) -> None:
    result = _flower(tmp_path, PROCTORQ_BROKER_URL=f"sqla+sqlite:///{tmp_path}/broker.sqlite3")
    assert result.returncode == 2, result.stderr
    assert "Flower needs Redis or RabbitMQ" in result.stderr
    assert "fanout" in result.stderr
    assert result.stderr.strip().count("\n") == 0  # one sentence, no traceback


def test_flower_refuses_another_address_without_a_password(tmp_path: Path) -> None:
    result = _flower(tmp_path, "--address", "0.0.0.0", PROCTORQ_BROKER_URL=REDIS_URL)
    assert result.returncode == 2, result.stderr
    assert "PROCTORQ_FLOWER_BASIC_AUTH" in result.stderr


def test_basic_auth_entries_and_loopback_addresses() -> None:
    from pydantic import SecretStr

    from config import ConfigurationError

    assert basic_auth_entries(None) == []
    assert basic_auth_entries(SecretStr("ops:a:b, two:x")) == ["ops:a:b", "two:x"]
    with pytest.raises(ConfigurationError) as caught:
        basic_auth_entries(SecretStr("ops:secret,nopassword"))
    assert "entry 2" in str(caught.value) and "secret" not in str(caught.value)
    assert all(is_loopback(a) for a in ("127.0.0.1", "127.0.1.1", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(a) for a in ("", "0.0.0.0", "::", "10.0.0.5", "example.com"))
