"""Settings of the identity service (environment prefix ``SOCLE_IDENTITY_``)."""

from __future__ import annotations

from typing import ClassVar, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator

from socle_core.settings import Environment, ServiceSettings, service_config


class IdentitySettings(ServiceSettings):
    model_config = service_config("SOCLE_IDENTITY_")
    service_name: ClassVar[str] = "identity"

    keycloak_url: str | None = Field(
        default=None,
        description="Base URL of Keycloak for the admin API, e.g. https://sso.example.fr; "
        "defaults to the part of oidc_issuer before /realms/.",
    )
    keycloak_realm: str | None = Field(
        default=None, description="Realm the platform lives in; defaults to the realm named by oidc_issuer."
    )
    keycloak_client_id: str = Field(
        default="socle-platform", min_length=1, description="Confidential client with realm-management roles."
    )
    keycloak_client_secret: SecretStr | None = Field(
        default=None,
        description="Secret of keycloak_client_id; required in production (organizations and service "
        "accounts cannot be managed without it).",
    )
    keycloak_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    keycloak_max_attempts: int = Field(default=3, ge=1, le=10)
    keycloak_backoff_seconds: float = Field(default=0.2, ge=0, le=10)
    proconnect_alias: str = Field(
        default="proconnect",
        min_length=1,
        description="Alias of the realm's ProConnect identity provider, whose agents are placed by SIRET.",
    )
    placement_sync_interval_seconds: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="How often agents brokered from ProConnect are placed in their commune's organization; "
        "0 turns the background task off (POST /v1/placements/sync still works).",
    )
    placement_lookback_seconds: int = Field(
        default=86_400,
        ge=60,
        le=7_776_000,
        description="How far back the first placement run after start reads Keycloak's login events.",
    )
    invitation_sync_interval_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="How often accepted invitations get their membership and role (and expired ones are "
        "closed); 0 turns the background task off (POST /v1/invitations/sync still works).",
    )
    audit_feed_interval_seconds: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="How often Keycloak's login, token and admin events are imported into the audit log; "
        "0 turns the background task off (POST /v1/audit-feed/sync still works).",
    )
    audit_feed_overlap_seconds: float = Field(
        default=120.0,
        ge=0,
        le=3600,
        description="Each import reads again this far before the newest event already imported, so an event "
        "Keycloak stored late is not missed (already imported ones are skipped by id).",
    )
    audit_feed_lookback_seconds: int = Field(
        default=7_776_000,
        ge=60,
        le=31_536_000,
        description="How far back the very first import reads (default: Keycloak's 90-day event retention).",
    )
    jobs_in_process: bool = Field(
        default=True,
        description="Run the background jobs in the service process; off when a separate worker runs them "
        "(python -m socle_identity.worker). Either way each job runs on one replica at a time.",
    )
    jobs_standby_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="How often a replica that does not hold a job's lock tries to take it over.",
    )
    audit_feed_page_size: int = Field(
        default=200,
        ge=10,
        le=1000,
        description="Events read from Keycloak per page; each page is imported in one database transaction.",
    )

    @model_validator(mode="after")
    def _admin_api_settings(self) -> Self:
        if "/realms/" not in urlsplit(self.oidc_issuer).path and (not self.keycloak_url or not self.keycloak_realm):
            raise ValueError(
                "oidc_issuer is not a Keycloak realm URL (…/realms/<realm>): set SOCLE_IDENTITY_KEYCLOAK_URL "
                "and SOCLE_IDENTITY_KEYCLOAK_REALM explicitly"
            )
        if self.environment is Environment.production and self.keycloak_client_secret is None:
            raise ValueError(
                "SOCLE_IDENTITY_KEYCLOAK_CLIENT_SECRET must be set in production: it is the secret of the "
                f"{self.keycloak_client_id!r} client the identity service manages Keycloak with"
            )
        return self

    @property
    def effective_keycloak_url(self) -> str:
        return (self.keycloak_url or self.oidc_issuer.split("/realms/", 1)[0]).rstrip("/")

    @property
    def effective_keycloak_realm(self) -> str:
        return self.keycloak_realm or self.oidc_issuer.split("/realms/", 1)[1].strip("/")
