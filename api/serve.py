"""Running the API: one uvicorn process, or several with a listening socket each.

uvicorn's own `--workers` shares one listening socket among its processes, and whichever wakes
first accepts: a client or proxy that opens its keep-alive connections at once hands every one
of them to the same process while the others idle (bench/ingest measured one worker at a full
core, the other at under 3%). Here every process binds its own socket with `SO_REUSEPORT`, and
the kernel spreads new connections across them by address hash. A small supervisor starts the
processes, starts another when one dies, and stops them all on SIGTERM or Ctrl-C.

    python -m api.serve [--app MODULE:FACTORY] [--host H] [--port P] [--workers N]
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

import uvicorn

from config import get_settings
from config.logging import configure_logging

log = logging.getLogger(__name__)

APP = "api.app:app_factory"
STARTUP_FAILURE = 3  # uvicorn's exit code when the app does not start
STOP_GRACE_SECONDS = 40.0


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) that other processes may bind too (`SO_REUSEPORT`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def serve_one(app: str, host: str, port: int, *, own_socket: bool) -> int:
    """One uvicorn process, in the foreground. Returns its exit code."""
    config = uvicorn.Config(
        app,
        factory=True,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[listening_socket(host, port)] if own_socket else None)
    except Exception:
        if server.started:
            raise
        log.exception("the API could not start")
    return 0 if server.started else STARTUP_FAILURE


def serve(app: str, host: str, port: int, workers: int) -> int:
    if workers <= 1:
        return serve_one(app, host, port, own_socket=False)
    try:
        listening_socket(host, port).close()  # fail here, once, if the address is taken
    except OSError as exc:
        print(f"proctorq api: cannot listen on {host}:{port}: {exc.strerror}.", file=sys.stderr)
        return 1
    return Supervisor(app, host, port, workers).run()


class Supervisor:
    """Keeps `workers` API processes running until told to stop.

    A process that exits with `STARTUP_FAILURE` could not start (the app fails to load, the
    address is taken): the others are stopped rather than it restarted forever.
    On SIGTERM or Ctrl-C every process gets SIGTERM, and SIGKILL if it has not exited after
    `STOP_GRACE_SECONDS` (a `?wait=` request may hold it up to 30 s).
    """

    def __init__(self, app: str, host: str, port: int, workers: int) -> None:
        self.argv = [sys.executable, "-m", "api.serve", "--child"]
        self.argv += ["--app", app, "--host", host, "--port", str(port)]
        self.workers = workers
        self.stopping = False

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True  # the loop signals the processes: it owns the list of them

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        started = [subprocess.Popen(self.argv) for _ in range(self.workers)]
        code = 0
        stop_sent: float | None = None
        while True:
            if self.stopping:
                if stop_sent is None:
                    stop_sent = time.monotonic()
                    for child in started:
                        if child.poll() is None:
                            child.send_signal(signal.SIGTERM)
                elif time.monotonic() - stop_sent > STOP_GRACE_SECONDS:
                    for child in started:
                        if child.poll() is None:
                            child.kill()
                if all(child.poll() is not None for child in started):
                    return code
            else:
                for index, child in enumerate(started):
                    exited = child.poll()
                    if exited is None:
                        continue
                    if exited == STARTUP_FAILURE:
                        log.error("an API process could not start; stopping the others")
                        code = STARTUP_FAILURE
                        self.stopping = True
                        break
                    log.warning(
                        "API process %d exited with %d; starting another", child.pid, exited
                    )
                    started[index] = subprocess.Popen(self.argv)
            time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", default=APP, help="module:factory of the ASGI app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        configure_logging(get_settings().log_level)
        return serve_one(args.app, args.host, args.port, own_socket=True)
    return serve(args.app, args.host, args.port, args.workers)


if __name__ == "__main__":
    sys.exit(main())
