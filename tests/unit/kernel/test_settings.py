"""Settings from LOYALTY_* variables and a .env file: JSON values, precedence, refusals that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tasks.kernel.settings import PROJECT_ROOT, Settings


def test_json_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOYALTY_PAUSED_CHANNELS", '["sms"]')
    monkeypatch.setenv("LOYALTY_QUIET_HOURS_BY_COUNTRY", '{"PL": [20, 8]}')
    monkeypatch.setenv("LOYALTY_RFM_RECENCY_EDGES", "[7, 30, 90, 180]")
    monkeypatch.setenv("LOYALTY_LIFECYCLE_FACTORS", "[1, 2, 4]")
    monkeypatch.setenv("LOYALTY_DRY_RUN", "true")

    settings = Settings(_env_file=None)

    assert settings.paused_channels == {"sms"}
    assert settings.quiet_hours_by_country == {"PL": (20, 8)}
    assert settings.rfm_recency_edges == (7.0, 30.0, 90.0, 180.0)
    assert settings.lifecycle_factors == (1.0, 2.0, 4.0)
    assert settings.dry_run is True


def test_a_dot_env_file_in_the_working_folder_configures_the_run_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text(
        "LOYALTY_SHOP_NAME=Kot i Pies\nLOYALTY_MARKETING_PER_DAY=2\nSOMETHING_ELSE=ignored\n", encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOYALTY_MARKETING_PER_DAY", "0")

    settings = Settings()

    assert settings.shop_name == "Kot i Pies"
    assert settings.marketing_per_day == 0


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("LOYALTY_SMS_SENDER_ID", "12345", "sms_sender_id"),  # at least one letter
        ("LOYALTY_SMS_SENDER_ID", "LoyaltyShop12", "sms_sender_id"),  # at most 11 characters
        ("LOYALTY_RECOMMEND_MODEL", "als", "recommend_model"),
        ("LOYALTY_QUIET_HOURS_START", "24", "quiet_hours_start"),
        ("LOYALTY_RETURN_GOAL", "daily", "return_goal"),
        ("LOYALTY_RFM_MONETARY_EDGES", "[10, 20, 30]", "rfm_monetary_edges"),
        ("LOYALTY_VIP_SHARE", "1.5", "vip_share"),
    ],
)
def test_an_invalid_setting_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ValidationError) as err:
        Settings(_env_file=None)

    assert [e["loc"][0] for e in err.value.errors()] == [field]


def test_the_signing_secrets_never_show_in_a_printed_or_dumped_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOYALTY_SIGNING_SECRET", "a-very-secret-signing-key")
    monkeypatch.setenv("LOYALTY_SIGNING_SECRETS_OLD", '["an-old-secret-signing-key"]')

    settings = Settings(_env_file=None)

    assert settings.signing_secret is not None
    assert settings.signing_secret.get_secret_value() == "a-very-secret-signing-key"
    assert [s.get_secret_value() for s in settings.signing_secrets_old] == ["an-old-secret-signing-key"]
    for secret in ("a-very-secret-signing-key", "an-old-secret-signing-key"):
        assert secret not in repr(settings)
        assert secret not in settings.model_dump_json()


def test_the_signing_secrets_old_name_still_sets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOYALTY_UNSUBSCRIBE_SECRET", "a-very-secret-signing-key")

    settings = Settings(_env_file=None)

    assert settings.signing_secret is not None
    assert settings.signing_secret.get_secret_value() == "a-very-secret-signing-key"


def test_the_catalog_and_templates_default_to_the_project_whatever_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    settings = Settings(_env_file=None)

    assert settings.campaigns_dir == PROJECT_ROOT / "campaigns" and (settings.campaigns_dir / "win_back.yaml").exists()
    assert settings.templates_dir == PROJECT_ROOT / "templates" and settings.templates_dir.is_dir()


def test_a_countrys_quiet_hour_outside_the_day_is_refused_like_the_default_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # [20, 80] would move a 21:00 send to 80 hours after midnight: three days late
    monkeypatch.setenv("LOYALTY_QUIET_HOURS_BY_COUNTRY", '{"PL": [20, 80]}')

    with pytest.raises(ValidationError, match="quiet_hours_by_country"):
        Settings(_env_file=None)
