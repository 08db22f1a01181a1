"""Typed, strict service settings.

Every service reads its settings from environment variables with its own prefix
(``SOCLE_TENANCY_``, ``SOCLE_INGESTION_``...). A misspelt variable is refused rather than
silently ignored, and development-only secrets are refused outside development: both
mistakes otherwise ship to production unnoticed.
"""

from __future__ import annotations

import difflib
import os
from enum import StrEnum
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Every default or example secret meant for a developer's machine contains this marker,
#: so that one check can refuse all of them outside development.
DEV_SECRET_MARKER = "dev-only"


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


def service_config(prefix: str) -> SettingsConfigDict:
    """The settings configuration every service uses, with its own env prefix."""
    return SettingsConfigDict(
        env_prefix=prefix,
        extra="forbid",
        case_sensitive=False,
        validate_default=True,
        env_nested_delimiter=None,
    )


class ServiceSettings(BaseSettings):
    """Settings common to every Socle service; each service subclasses it with its prefix."""

    model_config = service_config("SOCLE_")

    #: The service's short name, used in logs, metrics and the DB application_name.
    service_name: ClassVar[str] = "socle"

    environment: Environment = Field(
        default=Environment.development,
        description="development, test or production; production refuses development secrets.",
    )
    database_url: SecretStr = Field(
        description="SQLAlchemy URL of the application role (not the table owner), e.g. "
        "postgresql+asyncpg://socle_tenancy_app:PASSWORD@HOST:5432/socle",
    )
    migration_database_url: SecretStr | None = Field(
        default=None,
        description="URL of the schema owner role that runs migrations; "
        "defaults to database_url (only sensible in development).",
    )
    db_pool_size: int = Field(default=5, ge=1, le=100)
    db_max_overflow: int = Field(default=5, ge=0, le=100)
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    db_statement_timeout_ms: int = Field(default=30_000, ge=100)
    oidc_issuer: str = Field(
        description="Issuer URL of the Keycloak realm, e.g. https://sso.example.fr/realms/socle",
    )
    oidc_audience: str = Field(default="socle-api", min_length=1)
    oidc_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "PS256", "ES256"])
    oidc_leeway_seconds: int = Field(default=30, ge=0, le=120)
    oidc_max_token_lifetime_seconds: int = Field(
        default=3600,
        ge=60,
        le=86_400,
        description="Longest access-token lifetime accepted (exp - iat); the realm issues 300 s tokens.",
    )
    oidc_jwks_cache_seconds: int = Field(default=300, ge=10, le=86_400)
    oidc_http_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    log_json: bool = True
    cors_origins: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_environment_keys(cls, data: Any) -> Any:
        prefix = str(cls.model_config.get("env_prefix", "")).upper()
        known = {prefix + name.upper() for name in cls.model_fields}
        unknown = sorted(k for k in os.environ if k.upper().startswith(prefix) and k.upper() not in known)
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key.upper(), sorted(known), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                hints.append(f"{key}{hint}")
            raise ValueError(
                "unknown settings in the environment: "
                + ", ".join(hints)
                + f". Remove them or fix the spelling; valid keys start with {prefix}."
            )
        return data

    @field_validator("oidc_issuer")
    @classmethod
    def _issuer_is_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("must be an http(s) URL such as https://sso.example.fr/realms/socle")
        return value.rstrip("/")

    @field_validator("oidc_algorithms")
    @classmethod
    def _only_asymmetric_algorithms(cls, value: list[str]) -> list[str]:
        allowed = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
        bad = [alg for alg in value if alg not in allowed]
        if bad or not value:
            raise ValueError(
                f"only asymmetric signature algorithms are accepted ({', '.join(sorted(allowed))}); "
                f"refused: {', '.join(bad) or 'an empty list'}"
            )
        return value

    @field_validator("database_url", "migration_database_url")
    @classmethod
    def _asyncpg_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        if not value.get_secret_value().startswith("postgresql+asyncpg://"):
            raise ValueError("must start with postgresql+asyncpg:// (the async driver the services use)")
        return value

    @model_validator(mode="after")
    def _refuse_development_secrets(self) -> Self:
        if self.environment is Environment.development:
            return self
        offending = [name for name, secret in self._secret_values() if DEV_SECRET_MARKER in secret]
        if offending:
            raise ValueError(
                f"development-only secrets are refused when environment={self.environment.value}: "
                + ", ".join(offending)
                + ". Set real secrets (e.g. from a Kubernetes Secret) or use environment=development."
            )
        return self

    def _secret_values(self) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                found.append((name, value.get_secret_value()))
        return found

    @property
    def effective_migration_url(self) -> str:
        """The owner's URL for migrations; only development may fall back to the app role."""
        if self.migration_database_url is None:
            if self.environment is not Environment.development:
                raise ValueError(
                    f"{self.model_config.get('env_prefix')}MIGRATION_DATABASE_URL must be set: "
                    "migrations run as the schema owner, the service as a separate application role"
                )
            return self.database_url.get_secret_value()
        return self.migration_database_url.get_secret_value()
