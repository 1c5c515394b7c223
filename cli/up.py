"""`proctorq up`: migrate, then the API, a worker for every queue and the scheduler, in the
foreground, stopped together by Ctrl-C or SIGTERM.

Quiet unless asked: the summary of where things are, then warnings and errors only
(`--verbose` shows every part's own log).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time

from sqlalchemy.engine import make_url

from cli.local import (
    JWT_SECRET_FILE,
    SANDBOX_PROVIDER,
    SANDBOX_SECRET_FILE,
    local_jwt_secret,
    private_dir,
    sandbox_providers,
    sandbox_secret,
)
from cli.run import migrate
from config import Settings, get_settings
from config.logging import configure_logging
from workers.app import app as celery_app
from workers.queues import declare_queues
from workers.routing import is_embedded

PARTS = {"api": "the API", "worker": "the worker", "beat": "the scheduler"}


def production_warnings(settings: Settings) -> list[str]:
    """One line each for what a production setup should not leave as it is."""
    warnings = []
    on_postgresql = settings.database_url.startswith("postgresql")
    if on_postgresql and not (settings.jwt_issuer and settings.jwt_audience):
        warnings.append(
            "proctorq: warning: PROCTORQ_JWT_ISSUER and PROCTORQ_JWT_AUDIENCE are not both "
            "set, so any token the same key signed is accepted, whoever it was meant for."
        )
    return warnings


def up(args: argparse.Namespace) -> int:
    settings = get_settings()
    configure_logging(settings.log_level if args.verbose else "WARNING")
    private_dir(settings.var_dir)
    for warning in production_warnings(settings):
        print(warning, file=sys.stderr, flush=True)
    env = dict(os.environ)
    notes: list[str] = []
    if settings.jwt_key is None:
        secret, new = local_jwt_secret(settings.var_dir)
        env["PROCTORQ_JWT_SECRET"] = secret
        notes.append(
            f"  JWT secret     {secret}  ({'made now' if new else 'made earlier'}, kept in "
            f"{settings.var_dir / JWT_SECRET_FILE}; set PROCTORQ_JWT_SECRET to use your own)"
        )
    if not settings.providers and is_embedded(settings.broker_url):
        key, new = sandbox_secret(settings.var_dir)
        env["PROCTORQ_PROVIDERS"] = sandbox_providers(key)
        notes.append(
            f"  vendor         a local sandbox provider, {SANDBOX_PROVIDER!r} "
            f"({'made now' if new else 'made earlier'}; its webhook key is in "
            f"{settings.var_dir / SANDBOX_SECRET_FILE}; set PROCTORQ_PROVIDERS for real ones)"
        )
    # Where vendors speaking edx-proctoring's protocol call back: this API, unless configured.
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host  # noqa: S104
    env.setdefault("PROCTORQ_PUBLIC_URL", f"http://{host}:{args.port}")
    migrate(argparse.Namespace(quiet=not args.verbose))
    declare_queues(celery_app)

    def child(part: str, *argv: str) -> subprocess.Popen[bytes]:
        quiet = () if args.verbose else ("--quiet",)
        return subprocess.Popen(
            [sys.executable, "-m", "cli.main", part, *quiet, *argv],
            env=env,
            start_new_session=True,  # we decide when it stops, not the terminal's Ctrl-C
        )

    children = {
        "api": child("api", "--host", args.host, "--port", str(args.port)),
        "worker": child("worker", "-c", str(args.concurrency)),
        "beat": child("beat"),
    }
    print(summary(args, settings, notes), flush=True)
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    failed = None
    while not stopping and failed is None:
        time.sleep(0.2)
        failed = next((name for name, p in children.items() if p.poll() is not None), None)
    if failed:
        print(
            f"proctorq: {PARTS[failed]} stopped unexpectedly; stopping the rest.",
            file=sys.stderr,
            flush=True,
        )
    else:
        print(
            "\nproctorq: stopping: the API, the worker (after the tasks it is running) "
            "and the scheduler…",
            flush=True,
        )
    stop_children(children)
    print("proctorq: stopped.", flush=True)
    return 1 if failed else 0


def stop_children(children: dict[str, subprocess.Popen[bytes]], grace: float = 15.0) -> None:
    for process in children.values():
        if process.poll() is None:
            # The leader only: a worker then stops its own pool after the running tasks.
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in children.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(max(0.1, deadline - time.monotonic()))
        # Whatever is left of the group (a worker's pool processes), in any case.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)


def summary(args: argparse.Namespace, settings: Settings, notes: list[str]) -> str:
    base = f"http://{args.host}:{args.port}"
    broker = (
        "embedded, in " + settings.broker_url.split("///", 1)[-1]
        if is_embedded(settings.broker_url)
        else where(settings.broker_url)
    )
    emails = (
        f"sent through {where(settings.smtp_url.get_secret_value())}"
        if settings.smtp_url
        else f"written as .eml files to {settings.mail_dir}/"
    )
    lines = [
        "",
        "proctorq is up.",
        f"  API            {base}",
        f"  API docs       {base}/docs",
        f"  database       {where(settings.database_url)}",
        f"  broker         {broker}",
        f"  e-mails        {emails}",
        *notes,
        "  a token        proctorq token --user-id 1 --staff",
        "  a first run    proctorq demo  (exams, attempts, reviews, credit and e-mails)",
        "  backlog        proctorq status",
        "",
        "Stop with Ctrl-C. Warnings and errors follow; `proctorq up --verbose` shows every log.",
        "",
    ]
    return "\n".join(lines)


def where(url: str) -> str:
    """A URL without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.rsplit("@", maxsplit=1)[-1]
