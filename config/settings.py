"""The one settings object. Nothing else in proctorq reads the environment."""

from __future__ import annotations

import base64
import functools
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from config.edx_rest import edx_rest_field
from config.secrets import (
    MIN_HS256_SECRET_BYTES,
    WEBHOOK_KEY_BYTES,
    placeholder_reason,
)

ReviewWord = Literal["passed", "violation", "suspicious", "not_reviewed"]
REVIEW_WORDS: tuple[ReviewWord, ...] = ("passed", "violation", "suspicious", "not_reviewed")

DEFAULT_VOCABULARY: dict[str, ReviewWord] = {word: word for word in REVIEW_WORDS}


class ConfigurationError(Exception):
    """Start-up cannot go on; the message is one sentence an operator can act on."""


Protocol = Literal["standard-webhooks", "edx-rest"]


class ProviderConfig(BaseModel):
    """A proctoring vendor as configured in ``PROCTORQ_PROVIDERS``.

    Every provider may sign webhooks (``secrets``); one with ``"protocol": "edx-rest"`` also
    speaks edx-proctoring's REST backend protocol (docs/behaviour.md, "Vendors that speak
    edx-proctoring's REST protocol"), and needs ``secrets`` only to do both.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: Protocol = "standard-webhooks"
    secrets: tuple[str, ...] = Field(default=(), validate_default=True)
    review_statuses: dict[str, ReviewWord] = Field(
        default_factory=lambda: dict(DEFAULT_VOCABULARY), min_length=1
    )
    passing: tuple[ReviewWord, ...] = ("passed",)
    require_second_review: bool = True
    allow_timed_out_state: bool | None = None
    # edx-rest: the vendor, our client at the vendor, and the clients we issue the vendor.
    base_url: str | None = Field(default=None, validate_default=True)
    client_id: str | None = Field(default=None, validate_default=True)
    client_secret: SecretStr | None = Field(default=None, validate_default=True)
    callback_clients: dict[str, SecretStr] = Field(default_factory=dict, validate_default=True)

    @property
    def speaks_edx_rest(self) -> bool:
        return self.protocol == "edx-rest"

    @field_validator("secrets")
    @classmethod
    def _secrets_are_standard_webhooks_keys(
        cls, secrets: tuple[str, ...], info: ValidationInfo
    ) -> tuple[str, ...]:
        if not secrets and info.data.get("protocol") != "edx-rest":
            raise ValueError(
                'list at least one signing secret, or set "protocol": "edx-rest" for a '
                "vendor that speaks edx-proctoring's REST protocol"
            )
        for secret in secrets:
            check_webhook_key(secret, "put the vendor's signing key there")
        return secrets

    @field_validator("base_url", "client_id", "client_secret", "callback_clients")
    @classmethod
    def _edx_rest_fields(cls, value: Any, info: ValidationInfo) -> Any:
        return edx_rest_field(info.field_name or "", value, info.data.get("protocol"))


def check_webhook_key(secret: str, remedy: str) -> None:
    """Refuse what is not a Standard Webhooks key of 24–64 bytes, or is a placeholder."""
    raw = secret.removeprefix("whsec_")
    try:
        decoded = base64.b64decode(raw, validate=True)
    except ValueError:
        raise ValueError(
            "each secret must be a base64 key, optionally prefixed with 'whsec_'"
        ) from None
    why = placeholder_reason(secret) or placeholder_reason(decoded)
    if why:
        raise ValueError(f"a secret is a placeholder ({why}); {remedy}")
    low, high = WEBHOOK_KEY_BYTES
    if not low <= len(decoded) <= high:
        raise ValueError(
            f"each secret must decode to {low} to {high} bytes, as Standard Webhooks "
            f"keys do, and one decodes to {len(decoded)}"
        )


# What the LMS can be told (docs/behaviour.md, "Events for the LMS").
EventType = Literal["attempt.status_changed", "credit.changed", "review.received"]
EVENT_TYPES: tuple[EventType, ...] = ("attempt.status_changed", "credit.changed", "review.received")


class EventReceiver(BaseModel):
    """A receiver of events as configured in ``PROCTORQ_EVENT_WEBHOOKS``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # What the outbox, the logs and the metrics call it; the URL's host when not given.
    name: str = Field(default="", max_length=100, pattern=r"^[A-Za-z0-9_.:-]*$")
    url: str
    secret: SecretStr
    events: tuple[EventType, ...] = EVENT_TYPES

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the url must be an http:// or https:// address with a host")
        if parts.username is not None or parts.password is not None:
            # The URL names the receiver in logs, metrics and operators' lists.
            raise ValueError("the url must not carry a user or password: the secret signs")
        return url

    @field_validator("secret")
    @classmethod
    def _standard_webhooks_key(cls, secret: SecretStr) -> SecretStr:
        check_webhook_key(secret.get_secret_value(), "generate a key of your own for the receiver")
        return secret

    @field_validator("events")
    @classmethod
    def _some_events(cls, events: tuple[EventType, ...]) -> tuple[EventType, ...]:
        if not events:
            raise ValueError("events must name at least one type, or be left out for all")
        return events

    @model_validator(mode="after")
    def _named(self) -> EventReceiver:
        if not self.name:
            parts = urlsplit(self.url)
            host = parts.hostname or ""
            name = f"{host}:{parts.port}" if parts.port else host
            object.__setattr__(self, "name", name[:100])
        return self


class Settings(BaseSettings):
    """Every ``PROCTORQ_*`` variable, each with a default that works on one machine."""

    model_config = SettingsConfigDict(
        env_prefix="PROCTORQ_",
        env_file=".env",
        extra="ignore",
        frozen=True,
        env_ignore_empty=True,  # PROCTORQ_X= means "not set", as shells and compose files use it
    )

    # Where state lives. Relative paths are relative to the working directory.
    var_dir: Path = Path("var")
    database_url: str = "sqlite:///var/proctorq.sqlite3"
    broker_url: str = "sqla+sqlite:///var/broker.sqlite3"

    jwt_secret: SecretStr | None = None
    jwt_public_key: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    # Open edX marks tokens of restricted applications (`is_restricted`); they act for a user
    # only within scopes proctorq does not check, so they are refused unless allowed.
    jwt_allow_restricted: bool = False

    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    default_provider: str | None = None

    smtp_url: SecretStr | None = None
    email_from: str = "proctorq <proctorq@localhost>"
    support_url: str = "mailto:support@localhost"
    credit_webhook_url: str | None = None
    credit_webhook_timeout_seconds: float = 10.0
    # Receivers of signed events; each delivery may take this long before it is retried.
    event_webhooks: tuple[EventReceiver, ...] = ()
    event_webhook_timeout_seconds: float = Field(default=10.0, gt=0)

    # Vendors speaking edx-proctoring's REST protocol: where they call us back, the key of the
    # obscured user ids they are given, and how long one call to them may take.
    public_url: str | None = None
    user_obfuscation_key: SecretStr | None = None
    vendor_timeout_seconds: float = Field(default=10.0, gt=0)

    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    # A bearer token /metrics asks for; none: /metrics is open, for a scraper on a private network.
    metrics_token: SecretStr | None = None

    # How the pipeline behaves. The defaults suit one machine and the test suite alike.
    sweep_interval_seconds: float = Field(default=5.0, gt=0)
    sweep_after_seconds: float = Field(default=5.0, gt=0)
    timeout_sweep_interval_seconds: float = Field(default=15.0, gt=0)
    max_deliveries: int = Field(default=8, ge=1)
    # How long a follow-up whose dependency is away is retried before it ends failed.
    follow_up_retry_hours: float = Field(default=24.0, gt=0)
    # Other attempts with pending requests an apply task takes on besides its own.
    apply_batch_size: int = Field(default=100, ge=0)
    task_time_limit_seconds: int = Field(default=300, ge=10)
    email_claim_seconds: int = Field(default=600, ge=10)
    publish_pause_seconds: float = Field(default=2.0, ge=0)

    flower_basic_auth: SecretStr | None = None
    log_level: str = "INFO"

    @field_validator("jwt_secret", "flower_basic_auth", "metrics_token", "user_obfuscation_key")
    @classmethod
    def _not_a_placeholder(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None:
            why = placeholder_reason(secret.get_secret_value())
            if why:
                raise ValueError(f"the value is a placeholder ({why}); set a secret of your own")
        return secret

    @field_validator("user_obfuscation_key")
    @classmethod
    def _ascii_key(cls, key: SecretStr | None) -> SecretStr | None:
        # edx-proctoring keys its HMAC with the key's ASCII bytes; another key could not be.
        if key is not None and not key.get_secret_value().isascii():
            raise ValueError("the key must be ASCII, as edx-proctoring's obscured user ids need")
        return key

    @field_validator("jwt_secret")
    @classmethod
    def _long_enough_for_hs256(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None:
            size = len(secret.get_secret_value().encode())
            if size < MIN_HS256_SECRET_BYTES:
                raise ValueError(
                    f"an HS256 secret must be at least {MIN_HS256_SECRET_BYTES} bytes "
                    f"(RFC 7518 §3.2), and this one has {size}"
                )
        return secret

    @field_validator("database_url", "broker_url", "smtp_url")
    @classmethod
    def _no_placeholder_password(cls, url: str | SecretStr | None) -> str | SecretStr | None:
        raw = url.get_secret_value() if isinstance(url, SecretStr) else url
        if raw is None:
            return url
        try:
            password = urlsplit(raw).password
        except ValueError:
            password = None  # not a URL with a password; whatever reads it says what is wrong
        why = placeholder_reason(unquote(password)) if password else None
        if why:
            raise ValueError(
                f"the password in the URL is a placeholder ({why}); set a real one "
                "(for docker-compose.yml, POSTGRES_PASSWORD in .env)"
            )
        return url

    @model_validator(mode="after")
    def _default_provider_is_known(self) -> Settings:
        if self.default_provider is None:
            if len(self.providers) == 1:
                object.__setattr__(self, "default_provider", next(iter(self.providers)))
        elif self.default_provider not in self.providers:
            raise ValueError(
                f"PROCTORQ_DEFAULT_PROVIDER names {self.default_provider!r}, "
                "which PROCTORQ_PROVIDERS does not define"
            )
        return self

    @model_validator(mode="after")
    def _edx_rest_vendors_can_be_served(self) -> Settings:
        edx_rest = [name for name, p in self.providers.items() if p.speaks_edx_rest]
        if edx_rest and self.user_obfuscation_key is None:
            raise ValueError(
                f"PROCTORQ_USER_OBFUSCATION_KEY is required once an edx-rest provider "
                f"({edx_rest[0]!r}) is configured: it keys the user ids vendors are given"
            )
        issued: dict[str, str] = {}
        for name in edx_rest:
            for client_id in self.providers[name].callback_clients:
                if client_id in issued:
                    raise ValueError(
                        f"PROCTORQ_PROVIDERS: callback client {client_id!r} is issued by both "
                        f"{issued[client_id]!r} and {name!r}; give each vendor its own"
                    )
                issued[client_id] = name
        return self

    def callback_client(self, client_id: str) -> tuple[str, str] | None:
        """The provider that was issued this callback client, and the client's secret."""
        for name, provider in self.providers.items():
            secret = provider.callback_clients.get(client_id)
            if secret is not None:
                return name, secret.get_secret_value()
        return None

    @model_validator(mode="after")
    def _receivers_have_their_own_names(self) -> Settings:
        names = [receiver.name for receiver in self.event_webhooks]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(
                    f"PROCTORQ_EVENT_WEBHOOKS has two receivers called {name!r}; "
                    'give each a "name" of its own'
                )
        return self

    @property
    def mail_dir(self) -> Path:
        return self.var_dir / "mail"

    @property
    def jwt_key(self) -> str | None:
        if self.jwt_public_key:
            return self.jwt_public_key
        return self.jwt_secret.get_secret_value() if self.jwt_secret else None

    @property
    def jwt_algorithm(self) -> str:
        return "RS256" if self.jwt_public_key else "HS256"


def _describe(error: Any) -> str:
    location = [str(part) for part in error["loc"]]
    message = str(error["msg"]).removeprefix("Value error, ").rstrip(".")
    if location[:1] == ["providers"] and len(location) >= 2:
        provider = location[1]
        field = ".".join(location[2:]) or "(the whole definition)"
        return f"PROCTORQ_PROVIDERS: provider {provider!r} has a bad field {field!r}: {message}."
    if location[:1] == ["event_webhooks"] and len(location) >= 2:
        field = ".".join(location[2:]) or "(the whole definition)"
        return (
            f"PROCTORQ_EVENT_WEBHOOKS: receiver {int(location[1]) + 1} has a bad field "
            f"{field!r}: {message}."
        )
    if not location:
        return f"{message}."
    return f"PROCTORQ_{location[0].upper()}: {message}."


def load_settings(**overrides: Any) -> Settings:
    """Read the environment once; turn a bad value into one sentence."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc.errors()[0])) from None
    except SettingsError as exc:
        field = str(exc).split('"')[1] if '"' in str(exc) else "a setting"
        raise ConfigurationError(
            f"PROCTORQ_{field.upper()} could not be parsed: it must be valid JSON."
        ) from None


@functools.cache
def get_settings() -> Settings:
    return load_settings()
