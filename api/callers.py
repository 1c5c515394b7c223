"""What the API remembers of its callers between requests: the user rows it wrote."""

from __future__ import annotations

from sqlalchemy import Connection

from api.auth import Caller
from proctoring import people


class _KnownUsers:
    """The last claims written per user in this process: the upsert is skipped when the token
    says nothing new, which is almost always."""

    def __init__(self, size: int = 50_000) -> None:
        self._seen: dict[int, Caller] = {}
        self._size = size

    def changed(self, caller: Caller) -> bool:
        return self._seen.get(caller.user_id) != caller

    def remember(self, caller: Caller) -> None:
        if len(self._seen) >= self._size:
            self._seen.clear()
        self._seen[caller.user_id] = caller

    def forget(self) -> None:
        self._seen.clear()


known_users = _KnownUsers()


def write_user(connection: Connection, caller: Caller) -> None:
    """Create or refresh the caller's user row as its token describes it, on an autocommit
    connection (see `people.refresh_user`), and remember that it is written."""
    people.refresh_user(
        connection, caller.user_id, caller.username, caller.email, is_staff=caller.is_staff
    )
    known_users.remember(caller)
