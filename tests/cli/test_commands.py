"""The `proctorq` subcommands' own reading of their arguments."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cli.local import (
    JWT_SECRET_FILE,
    SANDBOX_SECRET_FILE,
    local_jwt_secret,
    sandbox_provider,
    sandbox_providers,
    sandbox_secret,
    sign_local_token,
)
from cli.main import main
from cli.up import production_warnings
from config import ConfigurationError, load_settings

PUBLIC_KEY = (
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


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


def test_the_sandbox_vendor_is_a_valid_provider_kept_privately(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROCTORQ_PROVIDERS", raising=False)
    monkeypatch.delenv("PROCTORQ_DEFAULT_PROVIDER", raising=False)
    var = tmp_path / "var"
    key, made = sandbox_secret(var)
    assert made and key.startswith("whsec_")
    assert stat.S_IMODE((var / SANDBOX_SECRET_FILE).stat().st_mode) == 0o600
    assert sandbox_secret(var) == (key, False)
    # What `up` hands its parts passes the same validation as a configured provider.
    settings = load_settings(
        providers=json.loads(sandbox_providers(key)), var_dir=var, _env_file=None
    )
    assert settings.providers["sandbox"].secrets == (key,)
    assert settings.default_provider == "sandbox"
    # The demo finds it when nothing is configured, and leaves configured providers alone.
    found = sandbox_provider(load_settings(var_dir=var, _env_file=None))
    assert found is not None and found[0] == "sandbox" and found[1].secrets == (key,)
    assert sandbox_provider(settings) is None
    assert sandbox_provider(load_settings(var_dir=tmp_path / "empty", _env_file=None)) is None


def test_a_local_token_is_signed_as_the_token_command_signs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_settings(var_dir=tmp_path / "var", _env_file=None)
    signed = sign_local_token(settings, 5, staff=True)
    key = settings.jwt_key or local_jwt_secret(tmp_path / "var")[0]
    claims = jwt.decode(signed, key, algorithms=["HS256"])
    assert claims["user_id"] == 5 and claims["administrator"] is True
    lms = load_settings(jwt_public_key=PUBLIC_KEY, _env_file=None)
    with pytest.raises(ConfigurationError, match="signed by the LMS"):
        sign_local_token(lms, 5)
