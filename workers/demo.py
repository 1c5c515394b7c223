"""`proctorq demo`: drive sample traffic through a running proctorq and show what happened.

Everything goes through the HTTP API, as the LMS, the learners and the vendor would send it:

1. the LMS (a global staff token) creates the learners, a course, three proctored exams and a
   practice exam; each learner creates attempts;
2. every learner starts and submits the first exam and the practice exam;
3. the vendor (the first configured provider) reviews each first exam in turn: passing
   (verified), failing without a human reviewer (second_review_required) and failing with one
   (rejected, which declines the learner's other proctored exams);
4. the first learner declines the second exam, which declines the third by cascade.

Then it waits for the workers and prints each attempt's final status, each learner's credit
and the e-mails sent. Tokens are signed with the key `proctorq token` uses.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx
from standardwebhooks import Webhook

from config import ProviderConfig, get_settings
from proctoring.statuses import Status, credit_value, sends_email
from workers.commands import _where, command, token

# The demo's people: LMS user ids far from real ones, the same in every run (each run makes a
# course of its own, so their attempts never collide).
LMS_USER_ID = 900_000_000
FIRST_LEARNER_ID = LMS_USER_ID + 1
WAIT_SECONDS = 10  # per GET /v1/transitions/{id}?wait=
PATIENCE_SECONDS = 90.0  # for the workers to finish everything the demo asked for
FINAL_STATES = ("applied", "noop", "rejected", "failed")


class DemoError(Exception):
    """The demo cannot go on; the message is one sentence."""


@dataclass(frozen=True)
class ExamSpec:
    key: str
    name: str
    practice: bool = False


EXAMS = (
    ExamSpec("midterm", "Midterm"),
    ExamSpec("final", "Final exam"),
    ExamSpec("lab", "Lab exam"),
    ExamSpec("practice", "Practice exam", practice=True),
)


@dataclass(frozen=True)
class Review:
    word: str  # the vendor's word
    reviewed_by: str | None
    outcome: str  # the status it should lead to


@dataclass
class Seat:
    """One learner's attempt at one exam: what the demo does with it and what it expects."""

    learner: int
    exam: ExamSpec
    moves: tuple[str, ...] = ()  # what the learner sends: started, submitted
    review: Review | None = None
    declines: bool = False  # the learner declines it (after the reviews)
    cascaded: bool = False  # declined by a cascade, not by a request of its own
    attempt_id: int = 0
    attempt_code: str = ""
    status: str = "-"

    @property
    def path(self) -> list[str]:
        """The statuses the attempt should go through, in order."""
        steps = list(self.moves)
        if self.review:
            steps.append(self.review.outcome)
        if self.declines or self.cascaded:
            steps.append(Status.declined.value)
        return steps

    @property
    def expected(self) -> str:
        return (self.path or [Status.created.value])[-1]

    @property
    def expected_credit(self) -> str | None:
        values = [credit_value(Status(s)) for s in self.path]
        found = [v.value for v in values if v is not None]
        return found[-1] if found else None

    @property
    def expected_emails(self) -> int:
        if self.exam.practice:
            return 0  # a sample attempt sends none
        return sum(1 for s in self.path if sends_email(Status(s)))


@dataclass
class Run:
    """One demo run: its course, exams, seats and what came back."""

    tag: str
    learners: int
    provider: str | None
    exam_ids: dict[str, int] = field(default_factory=dict)
    seats: list[Seat] = field(default_factory=list)
    transitions: dict[int, str] = field(default_factory=dict)  # id -> state
    credit: dict[int, dict[str, str]] = field(default_factory=dict)  # learner -> key -> status

    @property
    def course_id(self) -> str:
        return f"course-v1:proctorq+Demo{self.tag}+2026"

    def content_id(self, exam: ExamSpec) -> str:
        return f"block-v1:proctorq+Demo{self.tag}+type@sequential+block@{exam.key}"

    def complete(self) -> bool:
        return (
            all(state in FINAL_STATES and state != "failed" for state in self.transitions.values())
            and all(seat.status == seat.expected for seat in self.seats)
            and all(
                self.credit.get(seat.learner, {}).get(seat.exam.key) == seat.expected_credit
                for seat in self.seats
                if seat.expected_credit is not None
            )
        )


def learner_id(number: int) -> int:
    return FIRST_LEARNER_ID + number


def username(number: int) -> str:
    return f"demo-learner-{number + 1}"


# --- the plan -------------------------------------------------------------------------------


def review_kinds(config: ProviderConfig) -> tuple[Review, Review, Review]:
    """A passing review, a failing one nobody looked at, a failing one a human confirmed."""
    passing = [w for w, ours in config.review_statuses.items() if ours in config.passing]
    failing = [
        w
        for w, ours in config.review_statuses.items()
        if ours not in config.passing and ours != "not_reviewed"
    ]
    if not passing or not failing:
        raise DemoError("the provider's vocabulary needs a passing and a failing word")
    unconfirmed = "second_review_required" if config.require_second_review else "rejected"
    return (
        Review(passing[0], None, Status.verified.value),
        Review(failing[0], None, unconfirmed),
        Review(failing[0], "Demo Reviewer", Status.rejected.value),
    )


def plan(learners: int, reviews: tuple[Review, ...] | None) -> list[Seat]:
    midterm, final, lab, practice = EXAMS
    seats: list[Seat] = []
    for number in range(learners):
        review = reviews[number % len(reviews)] if reviews else None
        seats.append(Seat(number, midterm, ("started", "submitted"), review))
        seats.append(Seat(number, practice, ("started", "submitted")))
        if number == 0:  # the one decline the learner sends; the lab exam follows by cascade
            seats += [Seat(number, final, declines=True), Seat(number, lab, cascaded=True)]
        elif review is not None and review.outcome == Status.rejected:
            seats += [Seat(number, final, cascaded=True), Seat(number, lab, cascaded=True)]
    return seats


# --- talking to the API ---------------------------------------------------------------------


def make_token(user_id: int, name: str, *, staff: bool = False) -> str:
    """A token from `proctorq token`, so the demo signs exactly as an operator would."""
    printed = io.StringIO()
    request = argparse.Namespace(
        user_id=user_id, username=name, email=f"{name}@example.com", staff=staff, minutes=60
    )
    with contextlib.redirect_stdout(printed):
        code = token(request)
    if code != 0:
        raise DemoError("the demo needs PROCTORQ_JWT_SECRET (or the local secret) to sign tokens")
    return printed.getvalue().strip()


class Api:
    """The running proctorq, called with the LMS's token unless another is given."""

    def __init__(self, client: httpx.Client, lms_token: str) -> None:
        self.client = client
        self.lms_token = lms_token

    def call(
        self,
        method: str,
        path: str,
        *,
        as_token: str | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        sent = {"Authorization": f"Bearer {as_token or self.lms_token}", **(headers or {})}
        try:
            response = self.client.request(method, path, headers=sent, **kwargs)
        except httpx.HTTPError as exc:
            raise DemoError(
                f"cannot reach {self.client.base_url} ({exc}); is proctorq running?"
            ) from None
        if response.status_code >= 300:
            raise DemoError(f"{method} {path} answered {response.status_code}: {_detail(response)}")
        return response.json() if response.content else None


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    hint = ""
    if response.status_code == 401:
        hint = " (run the demo with the API's PROCTORQ_JWT_SECRET and providers)"
    return f"{detail or response.text[:200]}{hint}"


def put_user(api: Api, number: int) -> None:
    name = username(number)
    api.call(
        "PUT",
        f"/v1/users/{learner_id(number)}",
        json={"username": name, "email": f"{name}@example.com"},
    )


def put_course(api: Api, run: Run) -> None:
    api.call("PUT", f"/v1/courses/{run.course_id}", json={"name": f"proctorq demo {run.tag}"})


def create_exam(api: Api, run: Run, exam: ExamSpec) -> int:
    body: dict[str, Any] = {
        "course_id": run.course_id,
        "content_id": run.content_id(exam),
        "exam_name": exam.name,
        "time_limit_mins": 60,
        "is_practice_exam": exam.practice,
    }
    if run.provider:
        body["provider"] = run.provider
    return int(api.call("POST", "/v1/exams", json=body)["exam_id"])


def create_attempt(api: Api, run: Run, seat: Seat) -> None:
    exam_id = run.exam_ids[seat.exam.key]
    # The LMS creates it for the learner: only staff or the LMS give the vendor's session id.
    body = {
        "user_id": learner_id(seat.learner),
        "taking_as_proctored": True,
        "external_id": f"demo-{run.tag}-{seat.learner}-{exam_id}",
    }
    found = api.call("POST", f"/v1/exams/{exam_id}/attempts", json=body)
    seat.attempt_id, seat.attempt_code = int(found["attempt_id"]), str(found["attempt_code"])
    seat.status = str(found["status"])


def post_transition(api: Api, run: Run, seat: Seat, to_status: str, learner_token: str) -> int:
    answer = api.call(
        "POST",
        f"/v1/attempts/{seat.attempt_id}/transitions",
        as_token=learner_token,
        headers={"Idempotency-Key": f"demo-{run.tag}-{seat.attempt_id}-{to_status}"},
        json={"to_status": to_status},
    )
    return int(answer["transition_id"])


def post_review(api: Api, provider: str, secret: str, seat: Seat) -> int | None:
    """The vendor's verdict, signed as the Standard Webhooks specification says."""
    assert seat.review is not None
    body: dict[str, Any] = {"attempt_code": seat.attempt_code, "status": seat.review.word}
    if seat.review.reviewed_by:
        body["reviewed_by"] = seat.review.reviewed_by
    raw = json.dumps(body)
    message_id = f"msg_{uuid.uuid4().hex}"
    now = dt.datetime.now(dt.UTC)
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, raw),
        "content-type": "application/json",
    }
    answer = api.call("POST", f"/v1/providers/{provider}/reviews", content=raw, headers=headers)
    transition_id = answer.get("transition_id")
    return int(transition_id) if transition_id is not None else None


def wait_transition(api: Api, transition_id: int, deadline: float) -> str:
    """The request's state once final, or its state when the deadline passes."""
    while True:
        found = api.call("GET", f"/v1/transitions/{transition_id}", params={"wait": WAIT_SECONDS})
        state = str(found["state"])
        if state in FINAL_STATES or time.monotonic() >= deadline:
            return state


def read_status(api: Api, seat: Seat) -> str:
    return str(api.call("GET", f"/v1/attempts/{seat.attempt_id}")["status"])


def read_credit(api: Api, run: Run, number: int) -> dict[str, str]:
    rows = api.call(
        "GET", f"/v1/users/{learner_id(number)}/credit", params={"course_id": run.course_id}
    )
    by_content = {run.content_id(exam): exam.key for exam in EXAMS}
    return {by_content[r["name"]]: str(r["status"]) for r in rows if r["name"] in by_content}


# --- progress on stderr ---------------------------------------------------------------------


class Progress:
    """A text bar: redrawn in place on a terminal, one line per phase otherwise."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream
        self.width = width
        self.label = ""
        self.tty = stream.isatty()

    def phase(self, label: str) -> None:
        self.label = label
        self._draw(new_phase=True)

    def step(self, count: int = 1) -> None:
        self.done = min(self.total, self.done + count)
        self._draw()

    def close(self, finished: bool = True) -> None:
        """Fill the bar when the run finished; otherwise leave it where it stopped."""
        if finished:
            self.done = self.total
            self.label = "done"
            self._draw(new_phase=True)
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()

    def _draw(self, new_phase: bool = False) -> None:
        if not (self.tty or new_phase):
            return
        filled = self.width * self.done // self.total
        line = f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done:>3}/{self.total} "
        line += self.label
        if self.tty:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def count_steps(run: Run) -> int:
    moves = sum(len(s.moves) for s in run.seats)
    reviews = sum(1 for s in run.seats if s.review) if run.provider else 0
    declines = sum(1 for s in run.seats if s.declines)
    setup = run.learners + 1 + len(EXAMS)
    waits = moves + reviews + declines + sum(1 for s in run.seats if s.cascaded)
    return setup + len(run.seats) + moves + reviews + declines + waits + run.learners + 1


# --- the run --------------------------------------------------------------------------------


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


# --- the report -----------------------------------------------------------------------------


def status_table(run: Run) -> list[str]:
    cells: dict[tuple[int, str], str] = {}
    for seat in run.seats:
        cell = seat.status + (" (cascade)" if seat.cascaded else "")
        if seat.status != seat.expected:
            cell += f" [expected {seat.expected}]"
        cells[(seat.learner, seat.exam.key)] = cell
    header = ["learner", *(exam.name for exam in EXAMS)]
    rows = [
        [username(n), *(cells.get((n, exam.key), "-") for exam in EXAMS)]
        for n in range(run.learners)
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(value.ljust(widths[i]) for i, value in enumerate(row)).rstrip()
        for row in [header, *rows]
    ]


def credit_lines(run: Run) -> list[str]:
    lines = []
    for number in range(run.learners):
        got = run.credit.get(number, {})
        listed = ", ".join(f"{exam.key}: {got[exam.key]}" for exam in EXAMS if exam.key in got)
        lines.append(f"  {username(number):<18} {listed or 'none'}")
    return lines


def report(run: Run, emails: str, out: TextIO = sys.stdout) -> None:
    states = Counter(run.transitions.values())
    lines = [
        "",
        f"Course {run.course_id}"
        + (f", reviews by {run.provider}" if run.provider else ", no vendor reviews"),
        "",
        *status_table(run),
        "",
        "Credit (proctored_exam requirements):",
        *credit_lines(run),
        "",
        f"E-mails: {emails}",
        "Requests the demo sent: "
        + ", ".join(f"{states.get(state, 0)} {state}" for state in ("pending", *FINAL_STATES))
        + " (the cascades they caused are counted by proctorq status)",
        "",
        "Everything reached its final state."
        if run.complete()
        else "Not everything reached the expected final state (see [expected …] above).",
    ]
    print("\n".join(lines), file=out, flush=True)


@command("demo")
def demo(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.learners < 1:
        print("proctorq demo: --learners must be at least 1.", file=sys.stderr)
        return 2
    provider, secret, reviews = None, None, None
    if settings.providers:
        provider, config = next(iter(settings.providers.items()))
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
        emails = f"sent through {_where(settings.smtp_url.get_secret_value())} (not counted here)"
    else:
        progress.phase("e-mails follow")
        expected = sum(seat.expected_emails for seat in run.seats)
        count = emails_sent(mail_dir, before, expected, patience=30)
        emails = f"{count} written to {mail_dir}/ (expected {expected})"
    progress.close()
    report(run, emails)
    return 0 if run.complete() else 1
