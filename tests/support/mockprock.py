"""mockprock, the edx reference proctoring vendor, unchanged, in a virtual environment of its own.

Its source and pins are not part of this repository: ``PROCTORQ_MOCKPROCK_DIR`` names their
folder, by default ``shared/vendor/mockprock`` in the folder that holds the checkout, as CI's
machine has it. A clone without them skips the tests that need it. The environment is made
once, under ``var/mockprock-venv``, and reused:

    python -m tests.support.mockprock     # make it now (CI does, before the tests)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = Path(
    os.environ.get("PROCTORQ_MOCKPROCK_DIR", ROOT.parent / "shared" / "vendor" / "mockprock")
)
VENV = ROOT / "var" / "mockprock-venv"


def available() -> bool:
    return (SOURCE / "run.py").is_file() and (SOURCE / "requirements.txt").is_file()


def python() -> Path:
    """mockprock's interpreter, with its pins installed (once: a marker names the pins)."""
    interpreter = VENV / "bin" / "python"
    pins = (SOURCE / "requirements.txt").read_text()
    marker = VENV / ".installed"
    if interpreter.exists() and marker.exists() and marker.read_text() == pins:
        return interpreter
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run(
        [
            str(interpreter),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(SOURCE / "requirements.txt"),
        ],
        check=True,
    )
    marker.write_text(pins)
    return interpreter


if __name__ == "__main__":
    if not available():
        print(f"mockprock is not at {SOURCE}: the tests that run it will be skipped")
    else:
        print(python())
