"""The demo's run, phase by phase, and the `proctorq demo` command."""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

import httpx

from cli.demo.client import (
    Api,
    create_attempt,
    create_exam,
    make_token,
    post_review,
    post_transition,
    put_course,
    put_user,
    read_credit,
    read_status,
    wait_transition,
)
from cli.demo.plan import (
    EXAMS,
    LMS_USER_ID,
    PATIENCE_SECONDS,
    WAIT_SECONDS,
    DemoError,
    Run,
    learner_id,
    plan,
    review_kinds,
    username,
)
from cli.demo.report import Progress, report
from cli.local import sandbox_provider
from cli.up import where
from config import get_settings


def count_steps(run: Run) -> int:
    moves = sum(len(s.moves) for s in run.seats)
    reviews = sum(1 for s in run.seats if s.review) if run.provider else 0
    declines = sum(1 for s in run.seats if s.declines)
    setup = run.learners + 1 + len(EXAMS)
    waits = moves + reviews + declines + sum(1 for s in run.seats if s.cascaded)
    return setup + len(run.seats) + moves + reviews + declines + waits + run.learners + 1


def drive(api: Api, run: Run, secret: str | None, progress: Progress) -> None:
    """The whole story, phase by phase; each wait has PATIENCE_SECONDS of its own."""
    tokens = {n: make_token(learner_id(n), username(n)) for n in range(run.learners)}
    set_up(api, run, progress)
    create_attempts(api, run, progress)

    progress.phase("learners start and submit")
    sent: list[int] = []
    for seat in run.seats:
        for move in seat.moves:
            sent.append(post_transition(api, run, seat, move, tokens[seat.learner]))
            progress.step()
    progress.phase("the workers apply them")
    await_transitions(api, run, sent, progress)

    if run.provider and secret:
        progress.phase(f"the vendor {run.provider} posts its reviews")
        sent = []
        for seat in run.seats:
            if seat.review:
                transition_id = post_review(api, run.provider, secret, seat)
                sent += [] if transition_id is None else [transition_id]
                progress.step()
        await_transitions(api, run, sent, progress)

    progress.phase("a learner declines an exam")
    sent = []
    for seat in run.seats:
        if seat.declines:
            sent.append(post_transition(api, run, seat, "declined", tokens[seat.learner]))
            progress.step()
    await_transitions(api, run, sent, progress)

    progress.phase("the declines cascade")
    await_statuses(api, run, progress)
    progress.phase("credit follows")
    await_credit(api, run, progress)


def set_up(api: Api, run: Run, progress: Progress) -> None:
    progress.phase("the LMS sets up learners, a course and its exams")
    for number in range(run.learners):
        put_user(api, number)
        progress.step()
    put_course(api, run)
    progress.step()
    for exam in EXAMS:
        run.exam_ids[exam.key] = create_exam(api, run, exam)
        progress.step()


def create_attempts(api: Api, run: Run, progress: Progress) -> None:
    progress.phase("the LMS creates the learners' attempts")
    for seat in run.seats:
        create_attempt(api, run, seat)
        progress.step()


def await_transitions(api: Api, run: Run, ids: list[int], progress: Progress) -> None:
    deadline = time.monotonic() + PATIENCE_SECONDS
    for transition_id in ids:
        run.transitions[transition_id] = wait_transition(api, transition_id, deadline)
        progress.step()


def await_statuses(api: Api, run: Run, progress: Progress) -> None:
    """Every attempt's status; a cascade's target once it has landed (a follow-up task)."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    for seat in run.seats:
        seat.status = read_status(api, seat)
        while seat.cascaded and seat.status != seat.expected and time.monotonic() < deadline:
            time.sleep(0.25)
            seat.status = read_status(api, seat)
        if seat.cascaded:
            progress.step()


def await_credit(api: Api, run: Run, progress: Progress) -> None:
    """Each learner's credit, once it shows what the statuses imply (a follow-up task)."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    for number in range(run.learners):
        wanted = {
            seat.exam.key: seat.expected_credit
            for seat in run.seats
            if seat.learner == number and seat.expected_credit is not None
        }
        run.credit[number] = read_credit(api, run, number)
        while time.monotonic() < deadline and any(
            run.credit[number].get(key) != value for key, value in wanted.items()
        ):
            time.sleep(0.25)
            run.credit[number] = read_credit(api, run, number)
        progress.step()


def emails_sent(mail_dir: Path, before: set[Path], expected: int, patience: float) -> int:
    """E-mail files that appeared since the start, once the expected number has (or time ran
    out: e-mail is a follow-up, sent after the status change)."""
    deadline = time.monotonic() + patience
    while True:
        now = set(mail_dir.glob("*.eml")) if mail_dir.is_dir() else set()
        count = len(now - before)
        if count >= expected or time.monotonic() >= deadline:
            return count
        time.sleep(0.25)


def demo(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.learners < 1:
        print("proctorq demo: --learners must be at least 1.", file=sys.stderr)
        return 2
    provider, secret, reviews = None, None, None
    configured = (
        next(iter(settings.providers.items())) if settings.providers else None
    ) or sandbox_provider(settings)
    if configured:
        provider, config = configured
        secret = config.secrets[0]
        try:
            reviews = review_kinds(config)
        except DemoError as exc:
            print(f"proctorq demo: provider {provider}: {exc}; skipping reviews.", file=sys.stderr)
            provider = None
    else:
        print(
            "proctorq demo: no provider is configured (PROCTORQ_PROVIDERS), so there are no "
            "vendor reviews to send; skipping that step.",
            file=sys.stderr,
        )
    run = Run(uuid.uuid4().hex[:8], args.learners, provider)
    run.seats = plan(args.learners, reviews)
    mail_dir = settings.mail_dir
    before = set(mail_dir.glob("*.eml")) if mail_dir.is_dir() else set()
    progress = Progress(count_steps(run))
    try:
        lms = make_token(LMS_USER_ID, "demo-lms", staff=True)
        with httpx.Client(base_url=args.url.rstrip("/"), timeout=WAIT_SECONDS + 20) as client:
            drive(Api(client, lms), run, secret, progress)
    except DemoError as exc:
        progress.close(finished=False)
        print(f"proctorq demo: {exc}", file=sys.stderr)
        return 1
    if settings.smtp_url:
        emails = f"sent through {where(settings.smtp_url.get_secret_value())} (not counted here)"
    else:
        progress.phase("e-mails follow")
        expected = sum(seat.expected_emails for seat in run.seats)
        count = emails_sent(mail_dir, before, expected, patience=30)
        emails = f"{count} written to {mail_dir}/ (expected {expected})"
    progress.close()
    report(run, emails)
    return 0 if run.complete() else 1
