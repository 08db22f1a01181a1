"""Strict, typed settings: misspelt keys and development secrets never pass silently."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from socle_billing.config import BillingSettings
from socle_console.config import ConsoleSettings
from socle_identity.config import IdentitySettings
from socle_ingestion.config import IngestionSettings
from socle_tenancy.config import TenancySettings
from socle_timeseries.config import TimeseriesSettings

ALL = [TenancySettings, IdentitySettings, IngestionSettings, TimeseriesSettings, BillingSettings, ConsoleSettings]
DEV_URL = "postgresql+asyncpg://socle_tenancy_app:dev-only-x@127.0.0.1:5432/socle"
REAL_URL = "postgresql+asyncpg://socle_tenancy_app:Xk29-real-secret@db:5432/socle"
ISSUER = "https://sso.example.fr/realms/socle"


def _env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for key, value in values.items():
        monkeypatch.setenv(f"SOCLE_TENANCY_{key}", value)


def test_env_example_loads_for_every_service(clean_socle_env) -> None:
    example = Path(__file__).parents[2] / ".env.example"
    for line in example.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            clean_socle_env.setenv(key, value)
    for cls in ALL:
        settings = cls()
        assert settings.database_url.get_secret_value().startswith("postgresql+asyncpg://")
        assert settings.oidc_issuer == "http://127.0.0.1:8180/realms/socle"


def test_a_misspelt_key_is_refused_with_a_suggestion(clean_socle_env) -> None:
    _env(clean_socle_env, DATABASE_URL=DEV_URL, OIDC_ISSUER=ISSUER, OIDC_AUDIANCE="socle-api")
    with pytest.raises(ValidationError, match=r"SOCLE_TENANCY_OIDC_AUDIANCE.*did you mean SOCLE_TENANCY_OIDC_AUDIENCE"):
        TenancySettings()


def test_missing_required_setting_names_the_field(clean_socle_env) -> None:
    _env(clean_socle_env, OIDC_ISSUER=ISSUER)
    with pytest.raises(ValidationError, match="database_url"):
        TenancySettings()


def test_development_secrets_are_refused_outside_development(clean_socle_env) -> None:
    _env(clean_socle_env, DATABASE_URL=DEV_URL, OIDC_ISSUER=ISSUER, ENVIRONMENT="production")
    with pytest.raises(
        ValidationError, match="development-only secrets are refused when environment=production: database_url"
    ):
        TenancySettings()
    clean_socle_env.setenv("SOCLE_TENANCY_ENVIRONMENT", "development")
    assert TenancySettings().environment == "development"


def test_production_needs_the_owner_url_only_to_migrate(clean_socle_env) -> None:
    _env(clean_socle_env, DATABASE_URL=REAL_URL, OIDC_ISSUER=ISSUER, ENVIRONMENT="production")
    settings = TenancySettings()
    with pytest.raises(ValueError, match="SOCLE_TENANCY_MIGRATION_DATABASE_URL must be set"):
        _ = settings.effective_migration_url


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("OIDC_ISSUER", "sso.example.fr", "http\\(s\\) URL"),
        ("OIDC_ALGORITHMS", '["HS256"]', "only asymmetric"),
        ("OIDC_ALGORITHMS", '["none"]', "refused: none"),
        ("DATABASE_URL", "postgresql://u:p@h/db", "postgresql\\+asyncpg://"),
        ("OIDC_LEEWAY_SECONDS", "3600", "less than or equal to 120"),
    ],
)
def test_bad_values_say_how_to_fix_them(clean_socle_env, key: str, value: str, message: str) -> None:
    _env(clean_socle_env, DATABASE_URL=DEV_URL, OIDC_ISSUER=ISSUER)
    clean_socle_env.setenv(f"SOCLE_TENANCY_{key}", value)
    with pytest.raises(ValidationError, match=message):
        TenancySettings()


def test_secrets_do_not_show_in_repr(clean_socle_env) -> None:
    _env(clean_socle_env, DATABASE_URL=REAL_URL, OIDC_ISSUER=ISSUER)
    assert "Xk29-real-secret" not in repr(TenancySettings())
