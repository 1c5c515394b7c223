"""Proctoring vendors as configured, and how their review words map to our statuses."""

from __future__ import annotations

from config import ProviderConfig, get_settings
from proctoring.errors import Invalid, NotFound


def provider_config(name: str | None) -> ProviderConfig | None:
    if name is None:
        return None
    return get_settings().providers.get(name)


def require_provider(name: str) -> ProviderConfig:
    config = provider_config(name)
    if config is None:
        raise NotFound(f"provider {name!r} is not configured")
    return config


def provider_for_new_exam(name: str | None) -> str | None:
    """The provider an exam is created with: the one asked for, else the default."""
    if name is None:
        return get_settings().default_provider
    if provider_config(name) is None:
        raise Invalid(f"provider {name!r} is not configured")
    return name


def allows_timed_out_state(name: str | None) -> bool | None:
    """The provider's ``allow_timed_out_state``; None when it does not say."""
    config = provider_config(name)
    return None if config is None else config.allow_timed_out_state
