"""Logging: one format everywhere, the ids of the work at hand on every line, no addresses."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
from collections.abc import Iterator

_context: contextvars.ContextVar[tuple[tuple[str, object], ...]] = contextvars.ContextVar(
    "proctorq_log_context", default=()
)

# A safety net, not the policy: code logs ids, never addresses. Should an address slip into a
# message (an exception text quoting an SMTP reply, say), it is masked before it is written.
_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_SECRET = re.compile(r"(whsec_|Bearer\s+)[A-Za-z0-9+/=._-]+")

FORMAT = "%(asctime)s %(levelname)s %(name)s %(context)s%(message)s"


class ContextFilter(logging.Filter):
    """Adds the current ids to the record and masks addresses and secrets in the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        pairs = _context.get()
        record.context = "".join(f"{key}={value} " for key, value in pairs)
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            # A traceback can quote values (an exception's text); formatters use exc_text
            # as it is once it is set.
            record.exc_text = mask(_plain.formatException(record.exc_info))
        return True


_plain = logging.Formatter()


def mask(text: str) -> str:
    return _SECRET.sub(r"\1***", _ADDRESS.sub("<address>", text))


@contextlib.contextmanager
def log_context(**ids: object) -> Iterator[None]:
    """Within the block, every log line carries these ids (task name, transition ids…)."""
    token = _context.set(_context.get() + tuple(ids.items()))
    try:
        yield
    finally:
        _context.reset(token)


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(ContextFilter())
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def install_filter(logger: logging.Logger | None = None) -> None:
    """Put the filter on the handlers someone else configured (Celery's, uvicorn's)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())
