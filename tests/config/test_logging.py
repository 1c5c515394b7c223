"""Log lines carry the ids of the work at hand and never an address or a secret."""

from __future__ import annotations

import io
import logging

from config.logging import FORMAT, ContextFilter, log_context


def logger_to(stream: io.StringIO) -> logging.Logger:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(ContextFilter())
    log = logging.getLogger(f"proctorq.test.{id(stream)}")
    log.handlers[:] = [handler]
    log.propagate = False
    return log


def test_lines_carry_the_context_ids() -> None:
    stream = io.StringIO()
    with log_context(task="proctorq.apply_transitions", ids="12,13"):
        logger_to(stream).warning("applied")
    assert "task=proctorq.apply_transitions ids=12,13 applied" in stream.getvalue()


def test_addresses_and_secrets_are_masked_in_messages_and_tracebacks() -> None:
    stream = io.StringIO()
    log = logger_to(stream)
    log.warning("mail to %s with %s", "ada@example.test", "whsec_c2VjcmV0LXNlY3JldA==")
    try:
        raise ValueError("duplicate key for ada@example.test, Bearer eyJhbGciOi.x.y")
    except ValueError:
        log.exception("failed")
    text = stream.getvalue()
    assert "ada@example.test" not in text and "c2VjcmV0" not in text and "eyJhbGciOi" not in text
    assert text.count("<address>") >= 2 and "whsec_***" in text and "Bearer ***" in text
