"""The Dockerfile: what the image runs, as whom, and that it holds every package."""

from __future__ import annotations

import json
import re
import tomllib

from tests.support.deployment import DOCKERFILE, ROOT


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    start = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[start:]


def test_the_image_runs_the_proctorq_command_and_defaults_to_the_api() -> None:
    stage = final_stage()
    assert stage[0][1].split()[0] == "python:3.11-slim"
    commands = [json.loads(rest) for keyword, rest in stage if keyword in {"CMD", "ENTRYPOINT"}]
    entrypoint = [json.loads(rest) for keyword, rest in stage if keyword == "ENTRYPOINT"]
    assert commands
    assert commands[-1][0] == "proctorq" or (entrypoint and entrypoint[-1][0] == "proctorq")
    cmd = [json.loads(rest) for keyword, rest in stage if keyword == "CMD"][-1]
    assert cmd == ["proctorq", "api", "--host", "0.0.0.0"]


def test_the_image_runs_as_an_unprivileged_user() -> None:
    users = [rest for keyword, rest in final_stage() if keyword == "USER"]
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_the_image_contains_every_package_of_the_project() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {
        path.name
        for path in ROOT.iterdir()
        if (path / "__init__.py").is_file()
        and any(re.fullmatch(p.replace("*", ".*"), path.name) for p in patterns)
    }
    copied = {
        part.rstrip("/")
        for keyword, rest in dockerfile_instructions()
        if keyword == "COPY" and not rest.startswith("--from")
        for part in rest.split()[:-1]
    }
    assert packages
    assert packages <= copied, f"not copied into the image: {sorted(packages - copied)}"
    assert {"pyproject.toml", project["project"]["readme"]} <= copied
    # No test extras in the image.
    installs = " ".join(rest for keyword, rest in dockerfile_instructions() if keyword == "RUN")
    assert "[test]" not in installs
