"""Typed settings read once from the environment, provider definitions, logging."""

from config.settings import (
    REVIEW_WORDS,
    ConfigurationError,
    ProviderConfig,
    Settings,
    get_settings,
    load_settings,
)

__all__ = [
    "REVIEW_WORDS",
    "ConfigurationError",
    "ProviderConfig",
    "Settings",
    "get_settings",
    "load_settings",
]
