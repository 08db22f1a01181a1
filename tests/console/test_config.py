"""Console settings: the session cookie is Secure except on a developer's own machine, and
login secrets are required (and never development ones) outside development."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from socle_console.config import ConsoleSettings

BASE = {
    "database_url": "postgresql+asyncpg://socle_console_app:secret@db:5432/socle",
    "migration_database_url": "postgresql+asyncpg://socle_console_owner:secret@db:5432/socle",
    "oidc_issuer": "https://sso.example.fr/realms/socle",
}


def settings(**overrides) -> ConsoleSettings:
    return ConsoleSettings(**{**BASE, **overrides})


def test_defaults_are_safe(clean_socle_env) -> None:
    console = settings()
    assert console.oidc_client_id == "socle-console"
    assert console.cookie_secure is True
    assert console.callback_url == "http://localhost:8100/auth/callback"
    assert settings(public_url="https://console.example.fr/").public_url == "https://console.example.fr"


def test_public_url_is_an_origin(clean_socle_env) -> None:
    with pytest.raises(ValidationError, match="console's origin"):
        settings(public_url="https://console.example.fr/app")
    with pytest.raises(ValidationError, match="console's origin"):
        settings(public_url="console.example.fr")


def test_an_insecure_cookie_only_in_development_on_localhost(clean_socle_env) -> None:
    assert settings(environment="development", cookie_secure=False).cookie_secure is False
    with pytest.raises(ValidationError, match="COOKIE_SECURE=false is allowed only in development"):
        settings(environment="test", cookie_secure=False)
    with pytest.raises(ValidationError, match="COOKIE_SECURE=false is allowed only in development"):
        settings(environment="development", cookie_secure=False, public_url="http://console.example.fr")


def test_production_needs_https_and_the_client_secret(clean_socle_env) -> None:
    with pytest.raises(ValidationError, match="must be an https:// URL in production"):
        settings(environment="production", public_url="http://console.example.fr", oidc_client_secret="s3cret")
    with pytest.raises(ValidationError, match="SOCLE_CONSOLE_OIDC_CLIENT_SECRET must be set in production"):
        settings(environment="production", public_url="https://console.example.fr")
    with pytest.raises(ValidationError, match=r"development-only secrets are refused.*oidc_client_secret"):
        settings(environment="test", oidc_client_secret="dev-only-console")
    ok = settings(environment="production", public_url="https://console.example.fr", oidc_client_secret="s3cret")
    assert ok.oidc_client_secret is not None
    assert "s3cret" not in repr(ok)


def test_settings_come_from_the_environment(clean_socle_env) -> None:
    for key, value in BASE.items():
        clean_socle_env.setenv(f"SOCLE_CONSOLE_{key.upper()}", value)
    clean_socle_env.setenv("SOCLE_CONSOLE_PUBLIC_URL", "https://console.example.fr")
    clean_socle_env.setenv("SOCLE_CONSOLE_OIDC_CLIENT_SECRET", "from-env")
    console = ConsoleSettings()  # type: ignore[call-arg]
    assert console.public_url == "https://console.example.fr"
    assert console.oidc_client_secret is not None
    assert console.oidc_client_secret.get_secret_value() == "from-env"
    clean_socle_env.setenv("SOCLE_CONSOLE_OIDC_CLIENT_SECRT", "typo")
    with pytest.raises(ValidationError, match="did you mean SOCLE_CONSOLE_OIDC_CLIENT_SECRET"):
        ConsoleSettings()  # type: ignore[call-arg]
