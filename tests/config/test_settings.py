"""Settings: every variable has a working default; a bad provider stops start-up clearly."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from config import ConfigurationError, load_settings
from config.settings import Settings
from tests.support.environment import webhook_secret


def test_defaults_work_on_one_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PROCTORQ_PROVIDERS", "PROCTORQ_DEFAULT_PROVIDER", "PROCTORQ_JWT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(_env_file=None)
    assert settings.database_url.startswith("sqlite:///var/")
    assert settings.broker_url.startswith("sqla+sqlite:///var/")
    assert settings.jwt_key is None
    assert settings.providers == {}
    assert settings.default_provider is None
    assert settings.smtp_url is None
    assert settings.credit_webhook_url is None
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.email_from
    assert settings.support_url


def test_the_only_provider_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROCTORQ_DEFAULT_PROVIDER", raising=False)
    monkeypatch.setenv(
        "PROCTORQ_PROVIDERS", json.dumps({"solo": {"secrets": [webhook_secret("s")]}})
    )
    settings = load_settings(_env_file=None)
    assert settings.default_provider == "solo"
    solo = settings.providers["solo"]
    assert solo.require_second_review is True
    assert solo.allow_timed_out_state is None
    assert solo.passing == ("passed",)
    assert set(solo.review_statuses) == {"passed", "violation", "suspicious", "not_reviewed"}


@pytest.mark.parametrize(
    ("definition", "field"),
    [
        (
            {"secrets": ["whsec_" + "A" * 40], "require_second_review": "maybe"},
            "require_second_review",
        ),
        ({"secrets": []}, "secrets"),
        ({"secrets": ["not base64 !!"]}, "secrets"),
        (
            {"secrets": ["whsec_" + "A" * 40], "review_statuses": {"Clean": "great"}},
            "review_statuses.Clean",
        ),
        ({"secrets": ["whsec_" + "A" * 40], "passing": ["fine"]}, "passing.0"),
        ({"secrets": ["whsec_" + "A" * 40], "colour": "blue"}, "colour"),
    ],
)
def test_a_bad_provider_is_named_with_its_field(
    monkeypatch: pytest.MonkeyPatch, definition: dict[str, object], field: str
) -> None:
    monkeypatch.setenv("PROCTORQ_PROVIDERS", json.dumps({"vendorx": definition}))
    monkeypatch.delenv("PROCTORQ_DEFAULT_PROVIDER", raising=False)
    with pytest.raises(ConfigurationError) as error:
        load_settings(_env_file=None)
    message = str(error.value)
    assert "provider 'vendorx'" in message
    assert repr(field) in message
    assert message.count(".") >= 1
    assert "\n" not in message


def test_providers_that_are_not_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROCTORQ_PROVIDERS", "{not json")
    with pytest.raises(ConfigurationError, match=r"PROCTORQ_PROVIDERS .*valid JSON"):
        load_settings(_env_file=None)


def test_an_unknown_default_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROCTORQ_DEFAULT_PROVIDER", "nobody")
    with pytest.raises(ConfigurationError, match="PROCTORQ_DEFAULT_PROVIDER names 'nobody'"):
        load_settings(_env_file=None)


def test_the_readme_documents_every_setting_and_only_those() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`PROCTORQ_([A-Z_]+)`", table))
    assert documented == {name.upper() for name in Settings.model_fields}


# --- placeholders and weak secrets stop start-up --------------------------------------------


def refusal(**values: object) -> str:
    with pytest.raises(ConfigurationError) as error:
        load_settings(_env_file=None, **values)
    message = str(error.value)
    assert "\n" not in message and message.endswith("."), message
    assert message.count(". ") == 0, f"one sentence: {message}"
    return message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("jwt_secret", "change-me-a-long-random-jwt-secret"),
        ("jwt_secret", "an-lms-secret-REPLACE-ME-with-a-random-one-please"),
        ("flower_basic_auth", "admin:change-me-flower-password"),
        ("flower_basic_auth", "ops:a-good-one,admin:replace_me"),
        ("metrics_token", "change-me-metrics-token"),
        ("database_url", "postgresql+psycopg://proctorq:change-me-postgres-password@db/proctorq"),
        ("broker_url", "redis://:replace-me@redis:6379/0"),
        ("smtp_url", "smtps://mailer:change-me@smtp.example.org:465"),
    ],
)
def test_a_placeholder_secret_is_refused_naming_its_setting(field: str, value: str) -> None:
    message = refusal(**{field: value})
    assert message.startswith(f"PROCTORQ_{field.upper()}: "), message
    assert "placeholder" in message
    assert value not in message, "the refusal never quotes the secret"


@pytest.mark.parametrize(
    "secret",
    [
        # The word inside the decoded key, as .env.example's vendor key has it.
        "whsec_" + base64.b64encode(b"replace-me-with-the-vendor-signing-key").decode(),
        # The README's example key, also the Standard Webhooks documentation's.
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ],
)
def test_a_placeholder_webhook_secret_is_refused(secret: str) -> None:
    message = refusal(providers={"acme": {"secrets": [webhook_secret("acme"), secret]}})
    assert message.startswith("PROCTORQ_PROVIDERS: provider 'acme'"), message
    assert "placeholder" in message and secret not in message


@pytest.mark.parametrize("size", [1, 31])
def test_an_hs256_secret_under_32_bytes_is_refused(size: int) -> None:
    message = refusal(jwt_secret="k" * size)
    assert message.startswith("PROCTORQ_JWT_SECRET: ") and "32 bytes" in message, message
    assert "RFC 7518" in message


def test_an_hs256_secret_of_32_bytes_is_accepted() -> None:
    settings = load_settings(_env_file=None, jwt_secret="é" * 16)  # 32 bytes, 16 characters
    assert settings.jwt_key == "é" * 16


@pytest.mark.parametrize(
    ("size", "accepted"), [(16, False), (23, False), (24, True), (64, True), (65, False)]
)
def test_webhook_keys_are_24_to_64_bytes_decoded(size: int, accepted: bool) -> None:
    secret = "whsec_" + base64.b64encode(bytes(range(size))).decode()
    providers = {"acme": {"secrets": [secret]}}
    if accepted:
        assert load_settings(_env_file=None, providers=providers).providers["acme"].secrets
    else:
        message = refusal(providers=providers)
        assert "24 to 64 bytes" in message and f"decodes to {size}" in message, message


def test_the_suites_own_secrets_pass_the_rules() -> None:
    from tests.support.environment import JWT_SECRET, PROVIDERS

    settings = load_settings(
        _env_file=None, jwt_secret=JWT_SECRET, providers=PROVIDERS, default_provider="acme"
    )
    assert set(settings.providers) == set(PROVIDERS)
    for name in ("s", "acme-old", "mallory", "somebody-else-entirely"):
        load_settings(_env_file=None, providers={"p": {"secrets": [webhook_secret(name)]}})


@pytest.mark.parametrize(
    ("receiver", "sentence"),
    [
        ({"url": "ftp://lms.test/", "secret": webhook_secret("r")}, r"receiver 1 .*'url'"),
        ({"url": "https://lms.test/", "secret": "not base64 !!"}, r"receiver 1 .*'secret'"),
        (
            {
                "url": "https://lms.test/",
                "secret": "whsec_" + base64.b64encode(b"replace-me-with-a-real-key").decode(),
            },
            r"receiver 1 .*'secret'.*placeholder",
        ),
        (
            {"url": "https://lms.test/", "secret": webhook_secret("r"), "events": ["grade"]},
            r"receiver 1 .*'events.0'",
        ),
        ({"secret": webhook_secret("r")}, r"receiver 1 .*'url'"),
        (
            {"url": "https://hook:pass@lms.test/", "secret": webhook_secret("r")},
            r"receiver 1 .*'url'.*user or password",
        ),
    ],
)
def test_a_bad_event_receiver_is_named_in_one_sentence(
    monkeypatch: pytest.MonkeyPatch, receiver: dict[str, object], sentence: str
) -> None:
    monkeypatch.setenv("PROCTORQ_EVENT_WEBHOOKS", json.dumps([receiver]))
    with pytest.raises(ConfigurationError, match=f"^PROCTORQ_EVENT_WEBHOOKS: {sentence}") as error:
        load_settings(_env_file=None)
    assert "\n" not in str(error.value)
    assert str(receiver["secret"]) not in str(error.value)  # never the value


def test_event_receivers_are_named_by_their_host_unless_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = webhook_secret("r")
    monkeypatch.setenv(
        "PROCTORQ_EVENT_WEBHOOKS",
        json.dumps([{"url": "https://lms.test:8443/hooks", "secret": secret}]),
    )
    (receiver,) = load_settings(_env_file=None).event_webhooks
    assert receiver.name == "lms.test:8443"
    assert receiver.events == ("attempt.status_changed", "credit.changed", "review.received")
    twice = [{"url": "https://lms.test/a", "secret": secret}] * 2
    monkeypatch.setenv("PROCTORQ_EVENT_WEBHOOKS", json.dumps(twice))
    with pytest.raises(ConfigurationError, match=r"two receivers called 'lms\.test'"):
        load_settings(_env_file=None)


def test_the_obfuscation_key_is_ascii(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROCTORQ_USER_OBFUSCATION_KEY", "clé-de-brouillage-assez-longue")
    with pytest.raises(ConfigurationError, match=r"PROCTORQ_USER_OBFUSCATION_KEY.*ASCII"):
        load_settings(_env_file=None)
