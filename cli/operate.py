"""What operators run: `status` (the backlog), `failed` (what gave up), `replay` (try again)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from config import get_settings
from proctoring import operations
from proctoring.db import UnitOfWork, make_engine, make_session_factory
from workers.resources import celery_app, publisher
from workers.status import status_report


def _uow() -> UnitOfWork:
    engine = make_engine(get_settings().database_url)
    return UnitOfWork(make_session_factory(engine), publisher())


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
