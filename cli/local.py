"""What a machine running proctorq on its own keeps under var/: the local secrets.

`up` with nothing configured signs tokens with a JWT secret it makes, and gives the vendor
routes a sandbox provider with a webhook key it makes, so a first run can take an attempt from
registration to a vendor's review. Both live in var/, readable by their owner only, and
survive a restart.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import stat
import sys
import time
from pathlib import Path

import jwt

from config import ConfigurationError, ProviderConfig, Settings, get_settings

JWT_SECRET_FILE = "jwt-secret"  # noqa: S105 - a file name
SANDBOX_PROVIDER = "sandbox"
SANDBOX_SECRET_FILE = "sandbox-webhook-secret"  # noqa: S105 - a file name


def private_dir(path: Path) -> None:
    """var/ holds the database, mail and the local secrets: only its owner reads it. A
    folder that already exists is left as its owner made it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def local_secret(var_dir: Path, name: str, make: str) -> tuple[str, bool]:
    """The secret kept in var/<name>, made now (`make`) if there is none: (secret, made now)."""
    private_dir(var_dir)
    path = var_dir / name
    try:
        # O_EXCL: never written through a link or into a file someone else made first.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_secret_file(path), False
    with os.fdopen(fd, "w") as file:
        file.write(make + "\n")
    return make, True


def read_secret_file(path: Path) -> str:
    found = path.lstat()
    if not stat.S_ISREG(found.st_mode) or found.st_uid != os.getuid():
        raise ConfigurationError(f"{path} is not a file of this user's; remove it.")
    if found.st_mode & 0o077:
        path.chmod(0o600)  # made by an older proctorq with the umask's mode
    secret = path.read_text().strip()
    if not secret:
        raise ConfigurationError(f"{path} is empty; remove it.")
    return secret


def local_jwt_secret(var_dir: Path) -> tuple[str, bool]:
    """The secret `up` signs local tokens with (PROCTORQ_JWT_SECRET replaces it)."""
    return local_secret(var_dir, JWT_SECRET_FILE, secrets.token_urlsafe(32))


def sandbox_secret(var_dir: Path) -> tuple[str, bool]:
    """The Standard Webhooks key of the sandbox provider (PROCTORQ_PROVIDERS replaces it)."""
    key = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    return local_secret(var_dir, SANDBOX_SECRET_FILE, key)


def sandbox_providers(secret: str) -> str:
    """PROCTORQ_PROVIDERS naming the sandbox provider alone, with the default vocabulary."""
    return json.dumps({SANDBOX_PROVIDER: {"secrets": [secret]}})


def sandbox_provider(settings: Settings) -> tuple[str, ProviderConfig] | None:
    """The sandbox provider `up` made, if it made one and no provider is configured."""
    path = settings.var_dir / SANDBOX_SECRET_FILE
    if settings.providers or not path.exists():
        return None
    return SANDBOX_PROVIDER, ProviderConfig(secrets=(read_secret_file(path),))


def sign_local_token(
    settings: Settings,
    user_id: int,
    *,
    username: str | None = None,
    email: str | None = None,
    staff: bool = False,
    minutes: int = 60,
) -> str:
    """A JWT signed with PROCTORQ_JWT_SECRET, or the local secret `up` made."""
    key = settings.jwt_key
    if key is None:
        key, _ = local_jwt_secret(settings.var_dir)
    elif settings.jwt_public_key:
        raise ConfigurationError("tokens are signed by the LMS (RS256); there is no key here.")
    claims = {
        "user_id": user_id,
        "preferred_username": username or f"user{user_id}",
        "email": email or f"user{user_id}@localhost",
        "administrator": staff,
        "exp": int(time.time()) + minutes * 60,
    }
    return jwt.encode(claims, key, algorithm="HS256")


def token(args: argparse.Namespace) -> int:
    """`proctorq token`: print a token for trying the API by hand."""
    settings = get_settings()
    try:
        signed = sign_local_token(
            settings,
            args.user_id,
            username=args.username,
            email=args.email,
            staff=args.staff,
            minutes=args.minutes,
        )
    except ConfigurationError as exc:
        if settings.jwt_public_key:
            print(f"proctorq token: {exc}", file=sys.stderr)
            return 2
        raise
    print(signed)
    return 0
