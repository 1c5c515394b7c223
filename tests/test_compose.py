"""docker-compose.yml: its services and their wiring, and every command line it runs.

Docker is not needed: the compose file is read as YAML and its wiring checked, and every
`proctorq` command line it runs is checked against the real command's parser, both with
`--help` in a fresh interpreter and by parsing the exact arguments.
"""

from __future__ import annotations

import functools
import re
import shlex
import subprocess
import sys

import pytest

from tests.support.deployment import (
    COMPOSE_FILE,
    DOCKERFILE,
    ROOT,
    compose,
    env_example,
    environment_of,
    service,
)

PYTHON_SERVICES = (
    "migrate",
    "api",
    "worker-transitions",
    "worker-followups",
    "worker-events",
    "worker-vendor",
    "worker-maintenance",
    "beat",
    "flower",
)
LONG_RUNNING_PYTHON = tuple(name for name in PYTHON_SERVICES if name != "migrate")
WORKERS = (
    "worker-transitions",
    "worker-followups",
    "worker-events",
    "worker-vendor",
    "worker-maintenance",
)
ALL_SERVICES = {"postgres", "redis", "mailpit", *PYTHON_SERVICES}


def command_of(name: str) -> list[str]:
    command = service(name)["command"]
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def env_files_of(name: str) -> list[str]:
    env_file = service(name).get("env_file")
    if env_file is None:
        return []
    entries = env_file if isinstance(env_file, list) else [env_file]
    return [entry if isinstance(entry, str) else entry["path"] for entry in entries]


def healthcheck_test(name: str) -> list[str]:
    healthcheck = service(name).get("healthcheck")
    assert healthcheck, f"{name} has no healthcheck"
    assert not healthcheck.get("disable", False)
    test = healthcheck["test"]
    return shlex.split(test) if isinstance(test, str) else [str(part) for part in test]


def published_container_ports(name: str) -> set[int]:
    ports: set[int] = set()
    for entry in service(name).get("ports", []):
        target = entry["target"] if isinstance(entry, dict) else str(entry).rsplit(":", 1)[-1]
        ports.add(int(str(target).split("/", 1)[0]))
    return ports


# --- the services and their wiring -----------------------------------------------------------


def test_the_services_are_exactly_the_production_set() -> None:
    assert set(compose()["services"]) == ALL_SERVICES


def test_every_python_service_is_built_from_the_one_dockerfile() -> None:
    builds = {name: service(name).get("build") for name in PYTHON_SERVICES}
    first = builds["api"]
    assert first is not None
    context = first if isinstance(first, str) else first.get("context", ".")
    dockerfile = "Dockerfile" if isinstance(first, str) else first.get("dockerfile", "Dockerfile")
    assert (COMPOSE_FILE.parent / context / dockerfile).resolve() == DOCKERFILE
    assert all(build == first for build in builds.values()), builds
    # Only the Python services are built here; the others are published images.
    built = {name for name, definition in compose()["services"].items() if "build" in definition}
    assert built == set(PYTHON_SERVICES)
    images = {name: service(name).get("image") for name in PYTHON_SERVICES}
    assert len(set(images.values())) == 1, images


@pytest.mark.parametrize("name", PYTHON_SERVICES)
def test_python_services_read_the_env_file_and_reach_postgres_redis_and_mailpit(
    name: str,
) -> None:
    assert env_files_of(name) == [".env"]
    environment = environment_of(name)
    database = environment["PROCTORQ_DATABASE_URL"]
    assert database.startswith("postgresql+psycopg://proctorq:")
    assert database.endswith("@postgres:5432/proctorq")
    assert "${POSTGRES_PASSWORD" in database, "the password comes from .env, not the file"
    assert environment["PROCTORQ_BROKER_URL"] == "redis://redis:6379/0"
    assert "smtp://mailpit:1025" in environment["PROCTORQ_SMTP_URL"]


def test_the_postgres_password_is_the_one_the_database_is_created_with() -> None:
    postgres = service("postgres")["environment"]
    assert postgres["POSTGRES_USER"] == "proctorq"
    assert postgres["POSTGRES_DB"] == "proctorq"
    assert "${POSTGRES_PASSWORD" in postgres["POSTGRES_PASSWORD"]
    # The database container gets no application secrets.
    assert env_files_of("postgres") == []


def conditions(name: str) -> dict[str, str]:
    depends_on = service(name).get("depends_on") or {}
    assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions, not a list"
    return {dependency: spec["condition"] for dependency, spec in depends_on.items()}


def test_migrate_runs_once_the_database_is_healthy() -> None:
    assert conditions("migrate") == {"postgres": "service_healthy"}
    assert service("migrate").get("restart", "no") == "no"


@pytest.mark.parametrize("name", ["api", *WORKERS, "beat"])
def test_the_long_running_parts_wait_for_the_migration_and_the_broker(name: str) -> None:
    assert conditions(name) == {
        "migrate": "service_completed_successfully",
        "redis": "service_healthy",
    }


def test_flower_waits_for_the_broker() -> None:
    assert conditions("flower").get("redis") == "service_healthy"


@pytest.mark.parametrize("name", [*LONG_RUNNING_PYTHON, "postgres", "redis", "mailpit"], ids=str)
def test_long_running_services_restart_unless_stopped(name: str) -> None:
    assert service(name).get("restart") == "unless-stopped"


def test_redis_is_configured_as_a_queue_and_keeps_its_data() -> None:
    redis = service("redis")
    assert str(redis["image"]).startswith("redis:7")
    command = command_of("redis")
    assert command[0] == "redis-server"
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert options["--appendonly"] == "yes"
    assert options["--appendfsync"] == "everysec"
    assert options["--maxmemory-policy"] == "noeviction"
    assert healthcheck_test("redis")[-2:] == ["redis-cli", "ping"]
    assert any(str(volume).endswith(":/data") for volume in redis["volumes"])


def test_postgres_is_16_checked_with_pg_isready_and_keeps_its_data() -> None:
    postgres = service("postgres")
    assert postgres["image"] == "postgres:16"
    assert "pg_isready" in " ".join(healthcheck_test("postgres"))
    assert any(str(v).endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])


def test_named_volumes_are_declared() -> None:
    declared = set(compose().get("volumes") or {})
    used = {
        str(volume).split(":", 1)[0]
        for definition in compose()["services"].values()
        for volume in definition.get("volumes", [])
        if not str(volume).startswith((".", "/"))
    }
    assert used
    assert used <= declared


@pytest.mark.parametrize(
    "name", ["postgres", "redis", "api", *WORKERS, "flower", "mailpit"], ids=str
)
def test_healthchecks_are_present(name: str) -> None:
    test = healthcheck_test(name)
    assert test[0] in {"CMD", "CMD-SHELL"}


@pytest.mark.parametrize(
    "name", [n for n in PYTHON_SERVICES if "healthcheck" in service(n)], ids=str
)
def test_python_healthchecks_are_valid_python(name: str) -> None:
    test = healthcheck_test(name)
    assert test[:3] == ["CMD", "python", "-c"]
    compile(test[3], f"<{name} healthcheck>", "exec")


def test_the_api_publishes_8000_and_is_checked_on_healthz() -> None:
    assert 8000 in published_container_ports("api")
    code = healthcheck_test("api")[-1]
    assert "urllib" in code
    assert "127.0.0.1:8000/healthz" in code


def test_flower_is_behind_basic_auth() -> None:
    assert 5555 in published_container_ports("flower")
    auth = environment_of("flower")["PROCTORQ_FLOWER_BASIC_AUTH"]
    # Required: `docker compose` refuses to start without it rather than run Flower open.
    assert auth.startswith("${PROCTORQ_FLOWER_BASIC_AUTH:?"), auth
    user, _, password = (env_example()["PROCTORQ_FLOWER_BASIC_AUTH"] or "").partition(":")
    assert user
    assert password
    # /healthcheck is the one page Flower answers without the password.
    assert "127.0.0.1:5555/healthcheck" in healthcheck_test("flower")[-1]


def test_flower_is_published_on_loopback_unless_the_operator_opts_in() -> None:
    entries = service("flower")["ports"]
    assert len(entries) == 1
    entry = str(entries[0])
    # host_ip:published:target, the host ip from .env with loopback as the default
    assert entry == "${FLOWER_PUBLISH_ADDRESS:-127.0.0.1}:5555:5555", entry
    default = re.sub(r"\$\{FLOWER_PUBLISH_ADDRESS:-([^}]*)\}", r"\1", entry)
    assert default.split(":")[0] == "127.0.0.1"


def test_no_service_but_the_api_is_published_on_every_interface() -> None:
    for name, definition in compose()["services"].items():
        for entry in definition.get("ports", []):
            if name == "api":
                continue
            host_ip = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(entry)).rsplit(":", 2)[0]
            assert host_ip in ("127.0.0.1", "[::1]"), (name, entry)


def test_mailpit_catches_smtp_on_1025_with_a_page_on_8025() -> None:
    mailpit = service("mailpit")
    assert str(mailpit["image"]).startswith("axllent/mailpit")
    assert 8025 in published_container_ports("mailpit")


def test_the_workers_together_consume_every_queue_each_queue_once() -> None:
    from workers.routing import QUEUES

    consumed = [
        q for name in WORKERS for q in command_of(name)[command_of(name).index("-Q") + 1].split(",")
    ]
    assert sorted(consumed) == sorted(QUEUES)


# --- every command line exists ---------------------------------------------------------------


@functools.cache
def subcommand_help(subcommand: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", subcommand, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"proctorq {subcommand} --help: {result.stderr}"
    return result.stdout


def options_in(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", help_text))


@pytest.mark.parametrize("name", PYTHON_SERVICES)
def test_every_command_line_is_a_proctorq_command(name: str) -> None:
    command = command_of(name)
    assert command[0] == "proctorq"
    assert len(command) >= 2
    subcommand = command[1]
    help_text = subcommand_help(subcommand)
    assert help_text.startswith(f"usage: proctorq {subcommand}")
    passed = {arg.split("=", 1)[0] for arg in command[2:] if arg.startswith("-")}
    missing = passed - options_in(help_text)
    assert not missing, f"proctorq {subcommand} has no option {sorted(missing)}"

    from cli.main import build_parser

    # The exact arguments parse, values included (e.g. `-c 2` is a number).
    arguments = build_parser().parse_args(command[1:])
    assert arguments.command == subcommand
