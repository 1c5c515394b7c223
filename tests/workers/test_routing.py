"""Where tasks go is known without side effects, and the app reads no settings on import."""

from __future__ import annotations

import subprocess
import sys

from workers import routing


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_routing_imports_no_task_app_or_web_code() -> None:
    found = _run(
        "import sys, workers.routing; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tasks', 'api', 'cli', 'celery', 'fastapi') or m == 'workers.app'))"
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]"


def test_importing_the_app_reads_no_settings() -> None:
    """A bad setting is reported by the command that needs it, not by an import."""
    found = _run(
        "import workers.app, tasks.apply, tasks.followups, tasks.maintenance; print('ok')",
        PROCTORQ_SWEEP_INTERVAL_SECONDS="not a number",
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "ok"


def test_every_task_has_a_queue_and_every_wakeup_a_task() -> None:
    names = [v for k, v in vars(routing).items() if k.isupper() and isinstance(v, str)]
    assert sorted(names) == sorted(routing.ROUTES)
    assert set(routing.ROUTES.values()) == set(routing.QUEUES)
    assert set(routing.BY_WAKEUP.values()) <= set(routing.ROUTES)
    assert set(routing.MAINTENANCE) == {
        name for name, queue in routing.ROUTES.items() if queue == "maintenance"
    }


def test_the_maintenance_ticks_and_the_appliers_send_no_task_events() -> None:
    from workers.app import app

    app.loader.import_default_modules()
    quiet = {*routing.MAINTENANCE, routing.APPLY_TRANSITIONS}
    for name, task in app.tasks.items():
        if name.startswith("proctorq."):
            assert task.send_events == (name not in quiet), name


def test_a_worker_with_no_queues_named_consumes_them_all() -> None:
    from cli.main import build_parser

    args = build_parser().parse_args(["worker"])
    assert args.queues.split(",") == list(routing.QUEUES)
