"""memory: a worker's resident memory (main process and pool) after 100,000 transitions is
within 10% of what it was after 10,000. Every transition is fully done: status, credit,
e-mail.

    .venv/bin/python -m bench.memory [--transitions 100000]
"""

from __future__ import annotations

import argparse
import time

from bench.common import counts, environment, machine, record, report, rss_kib, seed, wait_until
from bench.smtp_sink import SMTPSink
from bench.system import publish_coalesced
from proctoring.statuses import Status

CHUNK = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transitions", type=int, default=100_000)
    args = parser.parse_args()
    total = args.transitions
    samples: dict[int, int] = {}
    began = time.monotonic()
    with SMTPSink() as smtp, environment(PROCTORQ_SMTP_URL=smtp.url) as stack:
        worker = stack.start_worker(
            "w", queues="transitions,credit,email,maintenance", concurrency=2
        )
        stack.start_beat()  # the sweeper, as in production
        for done in range(CHUNK, total + 1, CHUNK):
            attempts, _ = seed(stack, CHUNK, Status.started)
            publish_coalesced(stack, record(stack, attempts, Status.submitted))
            wait_until(
                lambda d=done: smtp.accepted >= d and counts(stack)["credit"] >= d,
                timeout=1200,
                interval=0.5,
                what=f"{done} transitions fully done",
            )
            samples[done] = rss_kib(worker.popen.pid)
            print(f"{done:>7} transitions: {samples[done] / 1024:.1f} MiB", flush=True)
    first, last = samples[CHUNK], samples[max(samples)]
    report(
        f"memory: one worker (2 pool processes), {total} transitions fully done",
        [
            ("machine", machine()),
            (f"resident after {CHUNK:,}", f"{first / 1024:.1f} MiB"),
            (f"resident after {max(samples):,}", f"{last / 1024:.1f} MiB"),
            ("growth (goal within 10%)", f"{(last - first) / first * 100:+.1f}%"),
            ("took", f"{time.monotonic() - began:.0f} s"),
        ],
    )


if __name__ == "__main__":
    main()
