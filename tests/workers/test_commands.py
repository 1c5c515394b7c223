"""The `proctorq` subcommands' own reading of their arguments."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from config import ConfigurationError, load_settings
from workers.cli import main
from workers.commands import JWT_SECRET_FILE, local_jwt_secret, production_warnings


@pytest.mark.parametrize(
    "raw", ["²", "①", "٣", "１２", "1" * 5000, "email:²", "email:" + "9" * 20, "0", "-3"]
)
def test_replay_refuses_what_is_not_an_id(raw: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Before the database is opened: each is a one-line refusal and exit status 2."""
    assert main(["replay", "--", raw]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("proctorq replay: ") and err.endswith("is not an id"), err
    assert "\n" not in err


def test_the_local_jwt_secret_is_private_and_kept(tmp_path: Path) -> None:
    var = tmp_path / "var"
    secret, made = local_jwt_secret(var)
    assert made and len(secret.encode()) >= 32
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    assert stat.S_IMODE((var / JWT_SECRET_FILE).stat().st_mode) == 0o600
    assert local_jwt_secret(var) == (secret, False)


def test_the_local_jwt_secret_is_never_written_through_a_link(tmp_path: Path) -> None:
    var = tmp_path / "var"
    var.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("")
    (var / JWT_SECRET_FILE).symlink_to(elsewhere)
    with pytest.raises(ConfigurationError, match="is not a file of this user's"):
        local_jwt_secret(var)
    assert elsewhere.read_text() == ""


def test_a_secret_file_left_readable_by_others_is_made_private(tmp_path: Path) -> None:
    var = tmp_path / "var"
    var.mkdir()
    path = var / JWT_SECRET_FILE
    path.write_text("an-older-secret-made-with-the-umask-mode-0644\n")
    path.chmod(0o644)
    assert local_jwt_secret(var) == ("an-older-secret-made-with-the-umask-mode-0644", False)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_up_on_postgresql_warns_without_issuer_and_audience() -> None:
    postgres = "postgresql+psycopg://proctorq@127.0.0.1/proctorq"
    (warning,) = production_warnings(load_settings(database_url=postgres, _env_file=None))
    assert "PROCTORQ_JWT_ISSUER" in warning and "PROCTORQ_JWT_AUDIENCE" in warning
    assert "\n" not in warning
    half = load_settings(database_url=postgres, jwt_issuer="https://lms.test", _env_file=None)
    assert len(production_warnings(half)) == 1
    both = load_settings(
        database_url=postgres,
        jwt_issuer="https://lms.test",
        jwt_audience="proctorq",
        _env_file=None,
    )
    assert production_warnings(both) == []
    assert production_warnings(load_settings(_env_file=None)) == []  # SQLite: one machine
