"""Domain errors. Each carries one sentence meant for the caller; the API maps the class."""

from __future__ import annotations


class DomainError(Exception):
    """Base of the errors a caller can act on."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    """The named thing does not exist (or is not visible to this caller)."""


class Conflict(DomainError):
    """The request collides with what is already recorded."""


class Invalid(DomainError):
    """The request is well-formed but names something that cannot be used."""


class Forbidden(DomainError):
    """The caller may not do this."""
