"""Typed settings read once from the environment, provider definitions, logging, the heap."""

from config.settings import (
    EVENT_TYPES,
    REVIEW_WORDS,
    ConfigurationError,
    EventReceiver,
    ProviderConfig,
    Settings,
    get_settings,
    load_settings,
)

__all__ = [
    "EVENT_TYPES",
    "REVIEW_WORDS",
    "ConfigurationError",
    "EventReceiver",
    "ProviderConfig",
    "Settings",
    "get_settings",
    "load_settings",
]
