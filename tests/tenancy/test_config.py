"""Tenancy settings: the Keycloak admin API derived from the issuer, strict and guarded."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from socle_tenancy.config import TenancySettings

BASE = {
    "database_url": "postgresql+asyncpg://u:p@127.0.0.1:1/socle",
    "oidc_issuer": "https://sso.example.fr/realms/socle",
}


def test_the_admin_api_and_token_endpoint_come_from_the_issuer(clean_socle_env) -> None:
    settings = TenancySettings(**BASE)
    assert settings.effective_keycloak_admin_url == "https://sso.example.fr/admin/realms/socle"
    assert settings.keycloak_token_url == "https://sso.example.fr/realms/socle/protocol/openid-connect/token"
    assert settings.keycloak_client_id == "socle-platform"


def test_an_admin_url_that_is_not_a_realm_admin_api_is_refused(clean_socle_env) -> None:
    with pytest.raises(ValidationError, match="/admin/realms/<realm>"):
        TenancySettings(**BASE, keycloak_admin_url="https://sso.example.fr/realms/socle")


def test_a_development_client_secret_is_refused_in_production(clean_socle_env) -> None:
    with pytest.raises(ValidationError, match="keycloak_client_secret"):
        TenancySettings(
            **BASE,
            environment="production",
            migration_database_url=BASE["database_url"],
            keycloak_client_secret="dev-only-platform-client",
        )


def test_a_misspelt_variable_is_refused(clean_socle_env) -> None:
    clean_socle_env.setenv("SOCLE_TENANCY_KEYCLOAK_CLIENT_SECRETS", "x")
    with pytest.raises(ValidationError, match="SOCLE_TENANCY_KEYCLOAK_CLIENT_SECRET"):
        TenancySettings(**BASE)


def test_the_billing_url_is_optional_but_must_be_an_http_url(clean_socle_env) -> None:
    assert TenancySettings(**BASE).billing_url is None
    assert TenancySettings(**BASE, billing_url="").billing_url is None
    assert TenancySettings(**BASE, billing_url="http://socle-billing:8000/").billing_url == "http://socle-billing:8000"
    with pytest.raises(ValidationError, match="base URL of the billing service"):
        TenancySettings(**BASE, billing_url="socle-billing:8000")
