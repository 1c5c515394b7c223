"""The `proctorq` subcommands' own reading of their arguments."""

from __future__ import annotations

import pytest

from workers.cli import main


@pytest.mark.parametrize(
    "raw", ["²", "①", "٣", "１２", "1" * 5000, "email:²", "email:" + "9" * 20, "0", "-3"]
)
def test_replay_refuses_what_is_not_an_id(raw: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Before the database is opened: each is a one-line refusal and exit status 2."""
    assert main(["replay", "--", raw]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("proctorq replay: ") and err.endswith("is not an id"), err
    assert "\n" not in err
