"""Settings: every variable has a working default; a bad provider stops start-up clearly."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from config import ConfigurationError, load_settings
from config.settings import Settings
from tests.conftest import webhook_secret


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
