"""Socle identity service: keycloak organizations per tenant, roles, service accounts and login."""
