"""`proctorq api --workers N`: N processes with a socket each, kept running, stopped together."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import alive, descendants, nothing_configured, wait_until
from tests.support.servers import free_port

pytestmark = pytest.mark.integration


def answered_by(port: int, state: str = "01") -> dict[int, int]:
    """Sockets on the port in a TCP state (01: established, 0A: listening), by the process
    holding their server side."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1].endswith(f":{port:04X}") and fields[3] == state:
                inodes.add(fields[9])
    counts: dict[int, int] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        for link in links:
            found = re.fullmatch(r"socket:\[(\d+)\]", link)
            if found and found.group(1) in inodes:
                counts[int(pid)] = counts.get(int(pid), 0) + 1
    return counts


def healthy_connections(port: int, count: int) -> list[socket.socket]:
    """`count` keep-alive connections opened at once, each having had one answer."""
    connections = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]
    for connection in connections:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    for connection in connections:
        assert connection.recv(4096).startswith(b"HTTP/1.1 200"), "an API process did not answer"
    return connections


def start(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    env = nothing_configured(tmp_path / "var")
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "api", "--workers", "2", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=(tmp_path / "api.log").open("wb"),
        stderr=subprocess.STDOUT,
    )


def test_connections_opened_at_once_reach_every_process(tmp_path: Path) -> None:
    port = free_port()
    process = start(tmp_path, port)
    try:
        wait_until(lambda: len(descendants(process.pid)) == 2, what="two API processes")
        children = descendants(process.pid)
        wait_until(
            lambda: set(answered_by(port, state="0A")) == children,
            timeout=60,
            what="both API processes to listen",
        )
        wait_until(lambda: _answers(port), timeout=60, what="the API to answer")
        connections = healthy_connections(port, 16)  # all alike: 2**-15 to land on one by chance
        assert set(answered_by(port)) == children, (answered_by(port), children)
        for connection in connections:
            connection.close()

        killed = min(children)
        os.kill(killed, signal.SIGKILL)
        wait_until(
            lambda: len(descendants(process.pid) - {killed}) == 2 and not alive(killed),
            what="another API process in place of the killed one",
        )
        wait_until(lambda: len(set(answered_by_after(port))) == 2, what="both to take connections")
    finally:
        family = descendants(process.pid)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, (tmp_path / "api.log").read_text()
        wait_until(lambda: not any(alive(pid) for pid in family), what="every API process to stop")
    assert "exited with -9; starting another" in (tmp_path / "api.log").read_text()


def answered_by_after(port: int) -> dict[int, int]:
    connections = healthy_connections(port, 16)
    try:
        return answered_by(port)
    finally:
        for connection in connections:
            connection.close()


def test_a_taken_address_is_one_sentence_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = start(tmp_path, port)
        assert process.wait(30) == 1
    printed = (tmp_path / "api.log").read_text()
    assert f"cannot listen on 127.0.0.1:{port}" in printed, printed
    assert "Traceback" not in printed


def _answers(port: int) -> bool:
    try:
        healthy_connections(port, 1)[0].close()
    except OSError:
        return False
    return True


def test_an_app_that_cannot_start_stops_them_all_with_exit_3(tmp_path: Path) -> None:
    env = nothing_configured(tmp_path / "var")
    argv = [sys.executable, "-m", "api.serve", "--app", "no_such_module:app_factory"]
    process = subprocess.Popen(
        [*argv, "--workers", "2", "--port", str(free_port())],
        env=env,
        cwd=tmp_path,
        stdout=(tmp_path / "api.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    assert process.wait(60) == 3, (tmp_path / "api.log").read_text()
    assert "could not start" in (tmp_path / "api.log").read_text()
