"""`proctorq flower`: Flower, in this process, on the configured broker.

Flower reads task events, which travel on a fanout exchange: Redis and RabbitMQ have one, the
embedded broker does not, so there Flower would show an empty or wrong picture. We refuse.

Who may look: Flower's pages have no login of their own, and its HTTP API answers 401 to
everything unless basic auth is set or ``FLOWER_UNAUTHENTICATED_API`` is true. So:

- ``PROCTORQ_FLOWER_BASIC_AUTH`` set: basic auth on the pages and the API, on any address;
- not set, loopback address: the API is opened to local callers, and Flower runs read-only
  (an unauthenticated Flower also allows any web page's cross-origin calls, so no page the
  operator's browser opens may shut a worker down or send a task);
- not set, any other address: refuse to start.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys

from pydantic import SecretStr

from config import ConfigurationError, get_settings
from config.logging import configure_logging
from workers.resources import celery_app
from workers.routing import is_embedded

EMBEDDED_BROKER = (
    "proctorq flower: Flower needs Redis or RabbitMQ as the broker (set PROCTORQ_BROKER_URL "
    "to redis://… or amqp://…), because it reads task events, which need a broker with "
    "fanout, and the embedded broker has none."
)


def flower(args: argparse.Namespace) -> int:
    settings = get_settings()
    if is_embedded(settings.broker_url):
        print(EMBEDDED_BROKER, file=sys.stderr)
        return 2
    users = basic_auth_entries(settings.flower_basic_auth)
    argv = ["flower", f"--address={args.address}", f"--port={args.port}"]
    if users:
        # In this process only: the password never appears on a command line.
        argv.append("--basic-auth=" + ",".join(users))
        print(
            f"proctorq flower: basic auth on (PROCTORQ_FLOWER_BASIC_AUTH, {len(users)} "
            "user(s)) for the pages and the API.",
            flush=True,
        )
    elif is_loopback(args.address):
        os.environ["FLOWER_UNAUTHENTICATED_API"] = "true"
        argv.append("--read_only=true")
        print(
            f"proctorq flower: no PROCTORQ_FLOWER_BASIC_AUTH, so Flower listens on {args.address} "
            "only, with its API open to local callers and in read-only mode; set "
            "PROCTORQ_FLOWER_BASIC_AUTH=user:password to use its controls or another address.",
            flush=True,
        )
    else:
        print(
            f"proctorq flower: refusing to listen on {args.address or 'every address'} without "
            "a password: set PROCTORQ_FLOWER_BASIC_AUTH=user:password, or use --address "
            "127.0.0.1.",
            file=sys.stderr,
        )
        return 2
    configure_logging(settings.log_level)
    try:
        code = celery_app().start(argv)
    except OSError as exc:  # the port is taken, the address is not ours…
        print(
            f"proctorq flower: Flower could not start on {args.address}:{args.port} ({exc}).",
            file=sys.stderr,
        )
        return 1
    return int(code or 0)


def basic_auth_entries(secret: SecretStr | None) -> list[str]:
    """``user:password[,user2:password2]`` as Flower's list of entries; never echoes them."""
    if secret is None:
        return []
    entries = [entry.strip() for entry in secret.get_secret_value().split(",") if entry.strip()]
    for number, entry in enumerate(entries, start=1):
        user, colon, password = entry.partition(":")
        if not (user and colon and password):
            raise ConfigurationError(
                f"PROCTORQ_FLOWER_BASIC_AUTH: entry {number} is not of the form user:password "
                "(separate several with commas)."
            )
    return entries


def is_loopback(address: str) -> bool:
    """Only this machine can connect: 127.0.0.0/8, ::1 or the name localhost."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False  # "" (every address) or a host name we do not guess about
