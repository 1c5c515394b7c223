"""Running the real pieces as separate processes: workers, beat, the API, a private Redis.

Used by the integration tests, the fault suite and the benchmarks. Every process gets the
same environment, logs to a file under the run's folder, and is stopped at the end.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from sqlalchemy import Engine

from config import load_settings
from proctoring.db import UnitOfWork, make_engine, make_session_factory
from tests.support.environment import STACK_MARK, TEST_ENV
from tests.support.servers import free_port
from workers.publisher import CeleryPublisher
from workers.routing import QUEUES

ALL_QUEUES = ",".join(QUEUES)
PYTHON = sys.executable


def wait_until(
    predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or predicate}")
        time.sleep(interval)


def _die_with_parent() -> None:
    """Linux: the child is killed when the test process dies, even by SIGKILL or a timeout."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        if not self.alive():
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the process and everything it started (a worker's pool children too)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def children(self) -> list[int]:
        try:
            out = subprocess.run(
                ["pgrep", "-P", str(self.popen.pid)], capture_output=True, text=True, check=False
            ).stdout
        except FileNotFoundError:
            return []
        return [int(pid) for pid in out.split()]


@dataclass
class Stack:
    """One proctorq deployment for a test: its settings, processes, database and broker."""

    folder: Path
    database_url: str
    broker_url: str
    env_overrides: dict[str, str] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            **TEST_ENV,
            "PROCTORQ_DATABASE_URL": self.database_url,
            "PROCTORQ_BROKER_URL": self.broker_url,
            "PROCTORQ_VAR_DIR": str(self.folder / "var"),
            "PROCTORQ_SWEEP_INTERVAL_SECONDS": "1",
            "PROCTORQ_SWEEP_AFTER_SECONDS": "3",
            "PROCTORQ_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            # Tells bench/__init__.py, imported by an app a benchmark serves, that this
            # process has its settings: the test settings' defaults must not replace them.
            STACK_MARK: "1",
            **self.env_overrides,
        }
        # Imported here: workers.app reads the settings when imported, and conftest files
        # import this module before the suite's settings are in place (tests/conftest.py).
        from workers.app import create_app

        settings = load_settings(
            database_url=self.database_url,
            broker_url=self.broker_url,
            var_dir=self.folder / "var",
            _env_file=None,
        )
        self.app = create_app(settings, current=False)
        self.engine: Engine = make_engine(self.database_url)
        self.publisher = CeleryPublisher(self.app, pause_seconds=0.5)
        self.uow = UnitOfWork(make_session_factory(self.engine), self.publisher)

    # --- processes -------------------------------------------------------------------------

    def spawn(self, name: str, *argv: str) -> Process:
        log = self.folder / f"{name}-{uuid.uuid4().hex[:6]}.log"
        handle = log.open("wb")
        popen = subprocess.Popen(
            [PYTHON, "-m", "cli.main", *argv],
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=self.folder,
            start_new_session=True,  # its own process group: kill() reaches the pool too
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - one prctl call, no locks taken
        )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def start_worker(
        self,
        name: str = "w1",
        queues: str = ALL_QUEUES,
        concurrency: int = 2,
        pool: str = "prefork",
        wait: bool = True,
        extra: Sequence[str] = (),
    ) -> Process:
        worker = self.spawn(
            name,
            "worker",
            "-Q",
            queues,
            "-c",
            str(concurrency),
            "--pool",
            pool,
            "-n",
            f"{name}-{uuid.uuid4().hex[:6]}@%h",
            *(["--", *extra] if extra else []),
        )
        if wait:
            wait_until(
                lambda: " ready." in worker.text() or not worker.alive(),
                timeout=60,
                what=f"worker {name} to be ready",
            )
            assert worker.alive(), worker.text()[-3000:]
        return worker

    def start_beat(self) -> Process:
        beat = self.spawn("beat", "beat")
        wait_until(
            lambda: "beat: Starting" in beat.text() or not beat.alive(),
            timeout=30,
            what="beat to start",
        )
        assert beat.alive(), beat.text()[-3000:]
        return beat

    def start_api(self, port: int | None = None, workers: int = 1) -> tuple[Process, str]:
        port = port or free_port()
        api = self.spawn("api", "api", "--port", str(port), "--workers", str(workers))
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            if not api.alive():
                return True
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout=60, what="the API to answer")
        assert api.alive(), api.text()[-3000:]
        return api, url

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.engine.dispose()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.text()[-4000:]}" for p in self.processes)

    def logs_full(self) -> str:
        return "\n".join(p.text() for p in self.processes)


class PrivateRedis:
    """A redis-server of our own on a free port, which a test may stop and start again."""

    def __init__(self, folder: Path, append_only: bool = True) -> None:
        self.folder = folder
        self.port = free_port()
        self.append_only = append_only
        self.popen: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.popen = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.folder),
                "--save",
                "",
                "--appendonly",
                "yes" if self.append_only else "no",
                "--appendfsync",
                "always",
                "--maxmemory-policy",
                "noeviction",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        wait_until(lambda: _pings(client), timeout=20, what="redis to answer")
        return self

    def stop(self, kill: bool = False) -> None:
        if self.popen is None:
            return
        if kill:
            self.popen.kill()
        else:
            self.popen.terminate()
        self.popen.wait(20)
        self.popen = None


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@contextlib.contextmanager
def stack(folder: Path, database_url: str, broker_url: str, **env: str) -> Iterator[Stack]:
    running = Stack(folder, database_url, broker_url, env)
    try:
        yield running
    except BaseException:
        print(running.logs())
        raise
    finally:
        running.stop()


class PrivatePostgres:
    """A PostgreSQL server of our own (initdb in a temporary folder, a free port), which a
    test may stop and start again without disturbing the machine's server."""

    BIN = (
        Path("/usr/lib/postgresql")
        / (
            sorted(p.name for p in Path("/usr/lib/postgresql").iterdir())[-1]
            if Path("/usr/lib/postgresql").exists()
            else "15"
        )
        / "bin"
    )

    def __init__(self) -> None:
        # Outside pytest's private temporary folders: the server runs as the postgres user.
        self.folder = Path(tempfile.mkdtemp(prefix="proctorq-pg-"))
        self.folder.chmod(0o755)
        self.data = self.folder / "data"
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *argv], check=True, capture_output=True, timeout=120)

    def init(self) -> PrivatePostgres:
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self._as_postgres(
            str(self.BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"
        )
        return self

    def start(self) -> PrivatePostgres:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._as_postgres(
            str(self.BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-w",
            "-l",
            str(self.folder / "server.log"),
            "start",
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(str(self.BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


# --- process trees, for tests of what `proctorq up` and `proctorq api` start -------------


def nothing_configured(var: Path) -> dict[str, str]:
    """The environment of a fresh machine: no PROCTORQ_* at all, but for keeping ./var of
    this test in its own folder (the same embedded defaults, somewhere else)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROCTORQ_")}
    env["PROCTORQ_VAR_DIR"] = str(var)
    env["PROCTORQ_DATABASE_URL"] = f"sqlite:///{var}/proctorq.sqlite3"
    env["PROCTORQ_BROKER_URL"] = f"sqla+sqlite:///{var}/broker.sqlite3"
    return env


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        out = subprocess.run(
            ["pgrep", "-P", str(todo.pop())], capture_output=True, text=True, check=False
        )
        for child in map(int, out.stdout.split()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")
