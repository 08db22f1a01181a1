"""The audit feed: Keycloak's user, client and admin events imported into the tenants' audit chains."""
