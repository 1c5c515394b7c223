"""What each `proctorq` subcommand does."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jwt

from config import ConfigurationError, Settings, get_settings
from config.logging import configure_logging
from proctoring import operations
from proctoring.db import UnitOfWork, make_engine, make_session_factory
from proctoring.schema import upgrade
from workers.resources import celery_app, publisher
from workers.status import status_report

Handler = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, Handler] = {}


def command(name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        COMMANDS[name] = handler
        return handler

    return register


def _uow() -> UnitOfWork:
    engine = make_engine(get_settings().database_url)
    return UnitOfWork(make_session_factory(engine), publisher())


@command("migrate")
def migrate(args: argparse.Namespace) -> int:
    settings = get_settings()
    engine = make_engine(settings.database_url)
    upgrade(engine)
    engine.dispose()
    print("proctorq: the database schema is up to date.")
    return 0


@command("worker")
def worker(args: argparse.Namespace) -> int:
    settings = get_settings()
    configure_logging(settings.log_level)
    # Start-up and shutdown lines ("… ready.") are worth seeing at any level.
    logging.getLogger("celery.apps.worker").setLevel(logging.INFO)
    argv = ["worker", "-Q", args.queues, "-c", str(args.concurrency), "--pool", args.pool]
    argv += ["--loglevel", settings.log_level]
    if args.hostname:
        argv += ["-n", args.hostname]
    argv += [a for a in args.extra if a != "--"]
    celery_app().worker_main(argv)
    return 0


@command("beat")
def beat(args: argparse.Namespace) -> int:
    settings = get_settings()
    configure_logging(settings.log_level)
    logging.getLogger("celery.beat").setLevel(logging.INFO)  # "Starting…", and what it sends
    private_dir(settings.var_dir)
    celery_app().start(["beat", "--loglevel", settings.log_level])
    return 0


@command("status")
def status(args: argparse.Namespace) -> int:
    report = status_report(_uow(), celery_app(), get_settings().broker_url)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0
    rows: list[tuple[str, str]] = []
    if report["queues"] is None:
        rows.append(("queues", f"broker unreachable ({report.get('broker_error')})"))
    else:
        rows += [(f"queue {name}", str(depth)) for name, depth in report["queues"].items()]
    rows += [
        ("pending requests", str(report["pending_transitions"])),
        ("failed requests", str(report["failed_transitions"])),
        ("oldest pending", _seconds(report["oldest_pending_seconds"])),
        ("pending follow-ups", str(report["pending_follow_ups"])),
        ("failed follow-ups", str(report["failed_follow_ups"])),
        ("outbox lag", _seconds(report["outbox_lag_seconds"])),
    ]
    rows += [
        (f"requests {state}", str(count))
        for state, count in sorted(report["transitions_by_state"].items())
    ]
    for receiver, figures in report["events"].items():
        rows.append(
            (
                f"events to {receiver}",
                f"{figures['delivered']} delivered, {figures['pending']} pending, "
                f"{figures['failed']} failed, oldest pending "
                + _seconds(figures["oldest_pending_seconds"]),
            )
        )
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


@command("failed")
def failed(args: argparse.Namespace) -> int:
    with _uow()() as session:
        items = operations.failed_items(session)
    if args.json:
        print(json.dumps([dataclasses.asdict(i) for i in items], default=str, indent=2))
        return 0
    if not items:
        print("Nothing has failed.")
        return 0
    print(f"{'what':<24} {'attempt':>8}  reason")
    for item in items:
        name = str(item.id) if item.kind == "transition" else f"{item.kind}:{item.id}"
        print(f"{name:<24} {item.attempt_id or '-':>8}  {item.detail}")
    print(f"\n{len(items)} failed. Replay with: proctorq replay ID… or proctorq replay --all")
    return 0


def _id(raw: str) -> int | None:
    """An id as the database keeps them: ASCII digits (str.isdigit() also takes "²" and "٣")
    that fit a signed 64-bit integer."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        return None
    value = int(raw)
    return value if 1 <= value < 2**63 else None


@command("replay")
def replay(args: argparse.Namespace) -> int:
    if not args.all and not args.ids:
        print("proctorq replay: name ids (12, email:7) or --all", file=sys.stderr)
        return 2
    transition_ids: list[int] = []
    outbox_ids: list[int] = []
    for raw in args.ids:
        kind, _, number = raw.rpartition(":")
        value = _id(number)
        if value is None:
            print(f"proctorq replay: {raw!r} is not an id", file=sys.stderr)
            return 2
        (outbox_ids if kind else transition_ids).append(value)
    with _uow()() as session:
        replayed = operations.replay(session, transition_ids, outbox_ids, everything=args.all)
    count = len(replayed[0]) + len(replayed[1])
    print(f"Replayed {len(replayed[0])} request(s) and {len(replayed[1])} follow-up(s).")
    return 0 if count or args.all else 1


@command("api")
def api(args: argparse.Namespace) -> int:
    from workers.serve import APP, serve

    configure_logging(get_settings().log_level)
    return serve(APP, args.host, args.port, args.workers)


# --- up: everything in the foreground ---------------------------------------------------------

JWT_SECRET_FILE = "jwt-secret"  # noqa: S105 - a file name


def private_dir(path: Path) -> None:
    """var/ holds the database, mail and the local JWT secret: only its owner reads it. A
    folder that already exists is left as its owner made it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def local_jwt_secret(var_dir: Path) -> tuple[str, bool]:
    """The secret `up` signs local tokens with: kept under var/ so tokens survive a restart."""
    private_dir(var_dir)
    path = var_dir / JWT_SECRET_FILE
    try:
        # O_EXCL: never written through a link or into a file someone else made first.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret_file(path), False
    secret = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as file:
        file.write(secret + "\n")
    return secret, True


def _read_secret_file(path: Path) -> str:
    found = path.lstat()
    if not stat.S_ISREG(found.st_mode) or found.st_uid != os.getuid():
        raise ConfigurationError(
            f"{path} is not a file of this user's; remove it, or set PROCTORQ_JWT_SECRET."
        )
    if found.st_mode & 0o077:
        path.chmod(0o600)  # made by an older proctorq with the umask's mode
    secret = path.read_text().strip()
    if not secret:
        raise ConfigurationError(f"{path} is empty; remove it, or set PROCTORQ_JWT_SECRET.")
    return secret


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


@command("up")
def up(args: argparse.Namespace) -> int:
    settings = get_settings()
    configure_logging(settings.log_level)
    private_dir(settings.var_dir)
    for warning in production_warnings(settings):
        print(warning, file=sys.stderr, flush=True)
    env = dict(os.environ)
    made_secret = None
    if settings.jwt_key is None:
        secret, new = local_jwt_secret(settings.var_dir)
        env["PROCTORQ_JWT_SECRET"] = secret
        made_secret = (secret, new)
    migrate(args)

    def child(*argv: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "workers.cli", *argv],
            env=env,
            start_new_session=True,  # we decide when it stops, not the terminal's Ctrl-C
        )

    children = {
        "api": child("api", "--host", args.host, "--port", str(args.port)),
        "worker": child("worker", "-c", str(args.concurrency)),
        "beat": child("beat"),
    }
    _say_where_things_are(args, settings, made_secret)
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
        print(f"proctorq: the {failed} stopped unexpectedly; stopping the rest.", file=sys.stderr)
    _stop_children(children)
    print("proctorq: stopped.")
    return 1 if failed else 0


def _stop_children(children: dict[str, subprocess.Popen[bytes]], grace: float = 15.0) -> None:
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


def _say_where_things_are(
    args: argparse.Namespace, settings: Settings, made_secret: tuple[str, bool] | None
) -> None:
    from workers.app import is_embedded

    base = f"http://{args.host}:{args.port}"
    lines = [
        "",
        "proctorq is up.",
        f"  API            {base}",
        f"  API docs       {base}/docs",
        f"  database       {_where(settings.database_url)}",
        "  broker         "
        + (
            "embedded, in " + settings.broker_url.split("///", 1)[-1]
            if is_embedded(settings.broker_url)
            else _where(settings.broker_url)
        ),
        "  e-mails        "
        + (
            f"sent through {_where(settings.smtp_url.get_secret_value())}"
            if settings.smtp_url
            else f"written as .eml files to {settings.mail_dir}/"
        ),
    ]
    if made_secret is not None:
        secret, new = made_secret
        lines.append(
            f"  JWT secret     {secret}  ({'made now' if new else 'made earlier'}, kept in "
            f"{settings.var_dir / JWT_SECRET_FILE}; set PROCTORQ_JWT_SECRET to use your own)"
        )
    lines += [
        "  a token        proctorq token --user-id 1 --staff",
        "  backlog        proctorq status",
        "",
        "Stop with Ctrl-C.",
        "",
    ]
    print("\n".join(lines), flush=True)


def _where(url: str) -> str:
    """A URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.rsplit("@", maxsplit=1)[-1]


@command("token")
def token(args: argparse.Namespace) -> int:
    settings = get_settings()
    key = settings.jwt_key
    if key is None:
        key, _ = local_jwt_secret(settings.var_dir)
    elif settings.jwt_public_key:
        print(
            "proctorq token: tokens are signed by the LMS (RS256); there is no key here.",
            file=sys.stderr,
        )
        return 2
    claims = {
        "user_id": args.user_id,
        "preferred_username": args.username or f"user{args.user_id}",
        "email": args.email or f"user{args.user_id}@localhost",
        "administrator": args.staff,
        "exp": int(time.time()) + args.minutes * 60,
    }
    print(jwt.encode(claims, key, algorithm="HS256"))
    return 0


from workers import demo, flower  # noqa: E402, F401  (register their commands)
