"""Keycloak as the identity service manages it: organizations and service accounts.

The transport (token, retries, typed errors) is the shared core's ``socle_core.keycloak_admin``.
"""

from socle_core.keycloak_admin import (
    KeycloakAdminClient,
    KeycloakAuthError,
    KeycloakConflict,
    KeycloakError,
    KeycloakNotFound,
    KeycloakRefused,
    KeycloakUnavailable,
    location_id,
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
    "location_id",
]
