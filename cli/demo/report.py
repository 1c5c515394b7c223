"""What the demo shows: a progress bar on stderr while it runs, the outcome at the end."""

from __future__ import annotations

import sys
from collections import Counter
from typing import TextIO

from cli.demo.plan import EXAMS, FINAL_STATES, Run, username


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
