"""What the suite reports at its end, besides pass and fail (tests/conftest.py prints it)."""

from __future__ import annotations

# How many steps the stateful test took against the reference model, per database.
STATEFUL_STEPS: dict[str, int] = {}
