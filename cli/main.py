"""`proctorq`: the parser, and the one function each subcommand calls."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import sqlalchemy.exc

from cli import flower, local, operate, run, up
from cli.demo import demo
from config import ConfigurationError, get_settings
from workers.routing import QUEUES

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="proctorq",
        description="Applies the status changes of proctored-exam attempts: "
        "reliably, in order, and fast.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up_cmd = sub.add_parser(
        "up",
        help="migrate, then run the API, a worker for every queue and the scheduler",
        description="Migrate, then run the API, one worker for every queue and the scheduler "
        "in the foreground. Ctrl-C or SIGTERM stops all of them. With nothing configured it "
        "runs on SQLite, an embedded broker and e-mail files under ./var/.",
    )
    up_cmd.add_argument("--host", default="127.0.0.1", help="address the API listens on")
    up_cmd.add_argument("--port", type=int, default=8000, help="port the API listens on")
    up_cmd.add_argument("--concurrency", type=int, default=2, help="worker processes (default 2)")
    up_cmd.add_argument(
        "--verbose",
        action="store_true",
        help="show every part's log (default: the summary, then warnings and errors)",
    )

    migrate_cmd = sub.add_parser(
        "migrate",
        help="bring the database schema up to date",
        description="Apply every database migration not yet applied.",
    )

    api_cmd = sub.add_parser(
        "api", help="run the HTTP API alone", description="Run the HTTP API (uvicorn)."
    )
    api_cmd.add_argument("--host", default="127.0.0.1", help="address to listen on")
    api_cmd.add_argument("--port", type=int, default=8000, help="port to listen on")
    api_cmd.add_argument(
        "--workers",
        type=int,
        default=1,
        help="API processes, each with a socket of its own the kernel spreads connections over",
    )

    worker_cmd = sub.add_parser(
        "worker",
        help="run a Celery worker alone",
        description="Run a Celery worker. Anything after -- goes to `celery worker` as is.",
    )
    worker_cmd.add_argument(
        "-Q",
        "--queues",
        default=",".join(QUEUES),
        help="comma-separated queues to consume (default: all of them)",
    )
    worker_cmd.add_argument("-c", "--concurrency", type=int, default=2, help="pool processes")
    worker_cmd.add_argument("-n", "--hostname", default=None, help="worker name, e.g. w1@%%h")
    worker_cmd.add_argument("--pool", default="prefork", help="prefork (default), threads, solo")
    worker_cmd.add_argument("extra", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    beat_cmd = sub.add_parser(
        "beat",
        help="run the scheduler alone",
        description="Run Celery beat: the sweeper, the outbox relay and the time-out sweep.",
    )

    for part in (migrate_cmd, api_cmd, worker_cmd, beat_cmd):
        # `up` runs the parts with this: warnings and errors only, no banners.
        part.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)

    status_cmd = sub.add_parser(
        "status",
        help="queue depths, pending and failed requests, oldest age, outbox lag",
        description="Show queue depths (read from the broker), pending and failed requests, "
        "the age of the oldest pending request and the outbox lag.",
    )
    status_cmd.add_argument("--json", action="store_true", help="print JSON for scripts")

    failed_cmd = sub.add_parser(
        "failed",
        help="list failed requests and follow-ups with their reason",
        description="List failed transition requests and follow-ups, with their reason.",
    )
    failed_cmd.add_argument("--json", action="store_true", help="print JSON for scripts")

    replay_cmd = sub.add_parser(
        "replay",
        help="put failed requests back in the queue",
        description="Put failed requests back: `replay 12 15` replays transitions 12 and 15, "
        "`replay email:7` replays follow-up 7, `replay --all` replays everything that failed.",
    )
    replay_cmd.add_argument("ids", nargs="*", help="transition ids, or KIND:ID for follow-ups")
    replay_cmd.add_argument("--all", action="store_true", help="replay everything that failed")

    flower_cmd = sub.add_parser(
        "flower",
        help="run Flower against the configured broker",
        description="Run Flower on the configured broker, with basic auth from "
        "PROCTORQ_FLOWER_BASIC_AUTH when set.",
    )
    flower_cmd.add_argument("--address", default="127.0.0.1", help="address to listen on")
    flower_cmd.add_argument("--port", type=int, default=5555, help="port to listen on")

    token_cmd = sub.add_parser(
        "token",
        help="make a token for trying the API locally",
        description="Print a JWT signed with the local secret (PROCTORQ_JWT_SECRET, or the "
        "one `up` made), for trying the API by hand.",
    )
    token_cmd.add_argument("--user-id", type=int, required=True, help="the LMS user id")
    token_cmd.add_argument("--username", default=None, help="preferred_username claim")
    token_cmd.add_argument("--email", default=None, help="email claim")
    token_cmd.add_argument("--staff", action="store_true", help="global staff (administrator)")
    token_cmd.add_argument("--minutes", type=int, default=60, help="lifetime (default 60)")

    demo_cmd = sub.add_parser(
        "demo",
        help="drive sample traffic through a running system and show what happened",
        description="Against a running proctorq, create a course with exams and learners, "
        "drive them through the HTTP API and print the final statuses, credit and e-mails.",
    )
    demo_cmd.add_argument("--url", default="http://127.0.0.1:8000", help="the API's base URL")
    demo_cmd.add_argument("--learners", type=int, default=6, help="learners to simulate")
    return parser


COMMANDS: dict[str, Handler] = {
    "up": up.up,
    "migrate": run.migrate,
    "api": run.api,
    "worker": run.worker,
    "beat": run.beat,
    "status": operate.status,
    "failed": operate.failed,
    "replay": operate.replay,
    "flower": flower.flower,
    "token": local.token,
    "demo": demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        get_settings()
        return COMMANDS[args.command](args)
    except ConfigurationError as exc:
        print(f"proctorq: {exc}", file=sys.stderr)
        return 2
    except sqlalchemy.exc.DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        print(
            f"proctorq: the database cannot answer ({reason}). Is it running, and has "
            "`proctorq migrate` been run?",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
