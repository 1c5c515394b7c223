"""`proctorq demo` against a real stack: API, worker and beat on PostgreSQL and Redis."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import stack

pytestmark = pytest.mark.integration


def test_the_demo_drives_every_outcome_to_its_end(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    with stack(tmp_path, postgres_url, redis_url) as running:
        running.start_worker()
        running.start_beat()
        _, url = running.start_api()
        result = subprocess.run(
            [sys.executable, "-m", "cli.main", "demo", "--url", url, "--learners", "3"],
            env=running.env,
            cwd=running.folder,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr + running.logs()
        for status in ("verified", "rejected", "second_review_required", "declined"):
            assert status in result.stdout, result.stdout
        assert "[expected" not in result.stdout
        assert "0 pending" in result.stdout and "0 failed" in result.stdout
        # submitted x3, verified and rejected; the practice exam's sample attempts send none
        assert "E-mails: 5 written to" in result.stdout, result.stdout
        assert "done" in result.stderr  # the progress bar ran to its end
