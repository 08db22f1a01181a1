"""Keycloak admin REST client of the identity service (organizations, service accounts)."""

from socle_identity.keycloak.client import KeycloakAdminClient
from socle_identity.keycloak.errors import (
    KeycloakAuthError,
    KeycloakConflict,
    KeycloakError,
    KeycloakNotFound,
    KeycloakRefused,
    KeycloakUnavailable,
)
from socle_identity.keycloak.organizations import Organization, Organizations
from socle_identity.keycloak.service_accounts import IssuedSecret, ServiceAccountClients

__all__ = [
    "IssuedSecret",
    "KeycloakAdminClient",
    "KeycloakAuthError",
    "KeycloakConflict",
    "KeycloakError",
    "KeycloakNotFound",
    "KeycloakRefused",
    "KeycloakUnavailable",
    "Organization",
    "Organizations",
    "ServiceAccountClients",
]
