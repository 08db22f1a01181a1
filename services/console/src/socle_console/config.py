"""Settings of the console (environment prefix ``SOCLE_CONSOLE_``)."""

from __future__ import annotations

from typing import ClassVar, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from socle_core.settings import Environment, ServiceSettings, service_config

_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


class ConsoleSettings(ServiceSettings):
    model_config = service_config("SOCLE_CONSOLE_")
    service_name: ClassVar[str] = "console"

    service_urls: dict[str, str] = Field(
        default_factory=dict,
        description='Base URLs of the other services, e.g. {"tenancy": "http://tenancy:8000"}',
    )
    public_url: str = Field(
        default="http://localhost:8100",
        description="URL the agents' browsers reach the console at, e.g. https://console.socle.example.fr; "
        "the login callback and logout URLs registered in Keycloak derive from it.",
    )
    oidc_client_id: str = Field(default="socle-console", min_length=1, description="The console's Keycloak client.")
    oidc_client_secret: SecretStr | None = Field(
        default=None,
        description="Secret of oidc_client_id (confidential client); required outside development. "
        "Without it the console shows only its status page.",
    )
    cookie_name: str = Field(default="socle_session", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    cookie_secure: bool = Field(
        default=True,
        description="Mark the session cookie Secure. Browsers accept Secure cookies on http://localhost; "
        "false is allowed only in development with an http://localhost public_url.",
    )
    session_lifetime_seconds: int = Field(
        default=36_000, ge=300, le=86_400, description="A console session never outlives this, refreshed or not."
    )
    login_timeout_seconds: int = Field(default=600, ge=60, le=3_600, description="Time to finish a login at Keycloak.")
    token_refresh_margin_seconds: int = Field(
        default=60, ge=5, le=240, description="Refresh the access token when it expires within this margin."
    )

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname or parts.path.strip("/"):
            raise ValueError("must be the console's origin, e.g. https://console.socle.example.fr (no path)")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _transport_and_secret(self) -> Self:
        local = urlsplit(self.public_url).hostname in _LOCAL_HOSTS
        if not self.cookie_secure and not (self.environment is Environment.development and local):
            raise ValueError(
                "SOCLE_CONSOLE_COOKIE_SECURE=false is allowed only in development with an http://localhost "
                "public_url: the session cookie would otherwise travel in clear text"
            )
        if self.environment is Environment.production:
            if urlsplit(self.public_url).scheme != "https":
                raise ValueError("SOCLE_CONSOLE_PUBLIC_URL must be an https:// URL in production")
            if self.oidc_client_secret is None:
                raise ValueError(
                    "SOCLE_CONSOLE_OIDC_CLIENT_SECRET must be set in production: it is the secret of the "
                    f"{self.oidc_client_id!r} client the console logs agents in with"
                )
        return self

    @property
    def callback_url(self) -> str:
        return f"{self.public_url}/auth/callback"
