"""A local SMTP server in a process of its own, counting what it accepts.

In the benchmark's own process it would share the interpreter lock with the polling and
publishing there, and answer several times slower than a real mail server does.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from tests.support.servers import free_port


class _Counter:
    def __init__(self, accepted: Synchronized[int], delay: float) -> None:
        self.accepted = accepted
        self.delay = delay

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.accepted.get_lock():
            self.accepted.value += 1
        return "250 OK"


def _serve(port: int, accepted: Synchronized[int], delay: float) -> None:
    from aiosmtpd.controller import Controller

    controller = Controller(_Counter(accepted, delay), hostname="127.0.0.1", port=port)
    controller.start()
    while True:
        time.sleep(3600)


class SMTPSink:
    """``with SMTPSink(delay=1.0) as smtp: … smtp.url … smtp.accepted``"""

    def __init__(self, delay: float = 0.0) -> None:
        self.port = free_port()
        self._accepted: Synchronized[int] = multiprocessing.Value("q", 0)  # type: ignore[assignment]
        self._process = multiprocessing.get_context("fork").Process(
            target=_serve, args=(self.port, self._accepted, delay), daemon=True
        )

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def accepted(self) -> int:
        return int(self._accepted.value)

    def __enter__(self) -> SMTPSink:
        import socket

        self._process.start()
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError("the SMTP sink did not start")

    def __exit__(self, *exc: object) -> None:
        self._process.kill()
        self._process.join(5)
