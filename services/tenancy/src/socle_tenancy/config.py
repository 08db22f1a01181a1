"""Settings of the tenancy service (environment prefix ``SOCLE_TENANCY_``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from socle_core.settings import ServiceSettings, service_config
from socle_tenancy.domain.isolation import signing


class TenancySettings(ServiceSettings):
    model_config = service_config("SOCLE_TENANCY_")
    service_name: ClassVar[str] = "tenancy"

    keycloak_admin_url: str | None = Field(
        default=None,
        description="Base URL of Keycloak's admin REST API for the realm, e.g. "
        "https://sso.example.fr/admin/realms/socle; defaults to the one of oidc_issuer.",
    )
    keycloak_client_id: str = Field(
        default="socle-platform",
        min_length=1,
        description="Confidential service-account client the onboarding workflow uses on Keycloak.",
    )
    keycloak_client_secret: SecretStr | None = Field(
        default=None,
        description="Secret of keycloak_client_id; onboarding answers 503 until it is set.",
    )
    keycloak_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    billing_url: str | None = Field(
        default=None,
        description="Base URL of the billing service, e.g. http://socle-billing:8000: onboarding opens each "
        "tenant's metering account there; its metering_account step fails (503) until it is set.",
    )
    console_url: str | None = Field(
        default=None,
        description="Public URL of the web console, e.g. https://socle.example.fr: the first admin's invitation "
        "ends on a page linking there (the realm's socle-console client must allow <console_url>/ as a redirect).",
    )
    billing_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    billing_attempts: int = Field(
        default=3, ge=1, le=10, description="Tries of a billing call on a network error or a 5xx answer."
    )
    default_max_devices: int = Field(default=100, ge=0)
    default_max_readings_per_day: int = Field(default=200_000, ge=0)
    default_storage_gb: int = Field(default=5, ge=0)
    report_signing_key: SecretStr | None = Field(
        default=None,
        description="Ed25519 private key (PEM, `openssl genpkey -algorithm ed25519`) that signs the isolation "
        "evidence reports; its public key is published at GET /v1/isolation/public-key. The report endpoints "
        "answer 503 until it is set.",
    )
    audit_heads_signing_key: SecretStr | None = Field(
        default=None,
        description="Secret (32+ random characters) the Ed25519 key signing the audit chains' heads is derived "
        "from; GET /v1/audit/heads answers 503 and nothing is published until it is set.",
    )
    audit_heads_dir: Path | None = Field(
        default=None,
        description="Directory of the append-only JSON Lines files (audit-heads-YYYY-MM.jsonl) the signed heads "
        "are published to, outside the database: a volume of its own, WORM storage, or one shipped to the auditor.",
    )
    audit_heads_interval_seconds: float = Field(
        default=3600,
        ge=0,
        description="Seconds between two publications of the signed heads to audit_heads_dir (0: never; "
        "`python -m socle_tenancy.audit publish-heads` publishes once).",
    )
    isolation_database_urls: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Application-role database URL of each other service, as JSON "
        '({"identity": "postgresql+asyncpg://socle_identity_app:...@host/socle", ...}): the isolation '
        "report probes every service through its own role.",
    )
    isolation_service_urls: dict[str, str] = Field(
        default_factory=dict,
        description='Base URL of each running service, as JSON ({"tenancy": "http://tenancy:8000", ...}), '
        "for the report's API probes.",
    )

    @field_validator("report_signing_key")
    @classmethod
    def _ed25519_signing_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            signing.private_key_from_pem(value.get_secret_value())  # its message says how to make one
        return value

    @field_validator("audit_heads_signing_key")
    @classmethod
    def _long_signing_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("au moins 32 caractères : générez-la avec `openssl rand -base64 48`")
        return value

    @field_validator("billing_url")
    @classmethod
    def _billing_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("must be the http(s) base URL of the billing service, e.g. http://socle-billing:8000")
        return value.rstrip("/")

    @field_validator("console_url")
    @classmethod
    def _console_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("must be the http(s) public URL of the console, e.g. https://socle.example.fr")
        return value.rstrip("/")

    @field_validator("keycloak_admin_url")
    @classmethod
    def _admin_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or "/admin/realms/" not in parts.path:
            raise ValueError(
                "must be an http(s) URL ending in /admin/realms/<realm>, e.g. https://sso.example.fr/admin/realms/socle"
            )
        return value.rstrip("/")

    @property
    def effective_keycloak_admin_url(self) -> str:
        """The admin API of the realm that issues the tokens: ``…/realms/x`` → ``…/admin/realms/x``."""
        if self.keycloak_admin_url:
            return self.keycloak_admin_url
        base, _, realm = self.oidc_issuer.rpartition("/realms/")
        return f"{base}/admin/realms/{realm}"

    @property
    def keycloak_token_url(self) -> str:
        return f"{self.oidc_issuer}/protocol/openid-connect/token"
