"""`.env.example`: every variable the compose file needs, only real settings, and secrets
that are placeholders start-up refuses."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.deployment import COMPOSE_FILE, INTERPOLATION, env_example, environment_of


def test_env_example_defines_every_variable_the_compose_file_needs() -> None:
    needed = {
        match["name"]
        for match in INTERPOLATION.finditer(COMPOSE_FILE.read_text())
        if match["modifier"] not in {":-", "-"}
    }
    assert "POSTGRES_PASSWORD" in needed
    missing = {name for name in needed if not env_example().get(name)}
    assert not missing, f".env.example lacks {sorted(missing)}"


def test_env_example_names_only_real_settings_and_they_validate() -> None:
    from config import Settings, load_settings

    values = {
        name.removeprefix("PROCTORQ_").lower(): value
        for name, value in env_example().items()
        if name.startswith("PROCTORQ_") and value is not None
    }
    unknown = set(values) - set(Settings.model_fields)
    assert not unknown, f".env.example sets unknown settings {sorted(unknown)}"
    assert {"jwt_secret", "providers", "flower_basic_auth"} <= set(values)
    values["providers"] = json.loads(values["providers"])
    assert all(
        secret.startswith("whsec_")
        for provider in values["providers"].values()
        for secret in provider["secrets"]
    )
    # With its placeholders replaced by real secrets, the file is a working configuration.
    real = {
        **values,
        "jwt_secret": "a" * 48,
        "flower_basic_auth": "admin:" + "b" * 24,
        "providers": {
            name: {**provider, "secrets": ["whsec_" + "Y2" * 16]}
            for name, provider in values["providers"].items()
        },
    }
    load_settings(_env_file=None, **real)


SECRETS = ("PROCTORQ_JWT_SECRET", "PROCTORQ_PROVIDERS", "PROCTORQ_FLOWER_BASIC_AUTH")


@pytest.mark.parametrize("name", SECRETS)
def test_env_example_secrets_are_placeholders_start_up_refuses(name: str) -> None:
    """Copied unchanged, the example file must not run: each secret stops start-up alone, with
    one sentence that names its setting."""
    from config import ConfigurationError, load_settings

    value = env_example()[name]
    assert value
    field = name.removeprefix("PROCTORQ_").lower()
    with pytest.raises(ConfigurationError) as refused:
        load_settings(
            _env_file=None, **{field: json.loads(value) if field == "providers" else value}
        )
    message = str(refused.value)
    assert message.startswith(name), message
    assert "placeholder" in message and "\n" not in message


def test_the_example_postgres_password_is_refused_in_the_database_url() -> None:
    from config import ConfigurationError, load_settings

    url = environment_of("api")["PROCTORQ_DATABASE_URL"]
    password = env_example()["POSTGRES_PASSWORD"] or ""
    url = re.sub(r"\$\{POSTGRES_PASSWORD[^}]*\}", password, url)
    with pytest.raises(ConfigurationError, match=r"^PROCTORQ_DATABASE_URL: .*placeholder"):
        load_settings(_env_file=None, database_url=url)


def test_the_command_line_stops_on_a_placeholder_with_one_sentence(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROCTORQ_")}
    env["PROCTORQ_JWT_SECRET"] = env_example()["PROCTORQ_JWT_SECRET"] or ""
    env["PROCTORQ_VAR_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "status"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("proctorq: PROCTORQ_JWT_SECRET: "), lines[0]
    assert "change-me" in lines[0] and env["PROCTORQ_JWT_SECRET"] not in lines[0]
