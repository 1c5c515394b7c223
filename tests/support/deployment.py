"""The production files, read as they are: docker-compose.yml, the Dockerfile, .env.example."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"

# A ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error} or ${NAME?error} in the file.
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<modifier>:?[-?])?")


@functools.cache
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict)
    return document


def service(name: str) -> dict[str, Any]:
    services = compose()["services"]
    assert name in services, f"docker-compose.yml has no {name!r} service"
    definition = services[name]
    assert isinstance(definition, dict)
    return definition


def environment_of(name: str) -> dict[str, str]:
    environment = service(name).get("environment") or {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


@functools.cache
def env_example() -> dict[str, str | None]:
    return dict(dotenv_values(ENV_EXAMPLE))
