"""Running one part in the foreground: `migrate`, `api`, `worker`, `beat`."""

from __future__ import annotations

import argparse
import logging

from api.serve import APP, serve
from cli.local import private_dir
from config import get_settings
from config.logging import configure_logging
from proctoring.db import make_engine
from proctoring.schema import upgrade
from workers.app import app as celery_app


def migrate(args: argparse.Namespace) -> int:
    settings = get_settings()
    engine = make_engine(settings.database_url)
    upgrade(engine)
    engine.dispose()
    if not args.quiet:
        print("proctorq: the database schema is up to date.")
    return 0


def _log_level(args: argparse.Namespace) -> str:
    """The settings' level, or warnings and errors only when `up` runs the part quietly."""
    return "WARNING" if args.quiet else get_settings().log_level


def worker(args: argparse.Namespace) -> int:
    level = _log_level(args)
    configure_logging(level)
    argv = ["worker", "-Q", args.queues, "-c", str(args.concurrency), "--pool", args.pool]
    argv += ["--loglevel", level]
    if args.quiet:
        argv.insert(0, "--quiet")  # no banner
    else:
        # Start-up and shutdown lines ("… ready.") are worth seeing at any level.
        logging.getLogger("celery.apps.worker").setLevel(logging.INFO)
    if args.hostname:
        argv += ["-n", args.hostname]
    argv += [a for a in args.extra if a != "--"]
    celery_app.worker_main(argv)
    return 0


def beat(args: argparse.Namespace) -> int:
    level = _log_level(args)
    configure_logging(level)
    if not args.quiet:
        logging.getLogger("celery.beat").setLevel(logging.INFO)  # "Starting…", what it sends
    private_dir(get_settings().var_dir)
    # The beat sends only the maintenance ticks, which Flower need not list (workers/routing.py).
    celery_app.conf.task_send_sent_event = False
    argv = ["beat", "--loglevel", level]
    celery_app.start(["--quiet", *argv] if args.quiet else argv)
    return 0


def api(args: argparse.Namespace) -> int:
    configure_logging(_log_level(args))
    return serve(APP, args.host, args.port, args.workers)
