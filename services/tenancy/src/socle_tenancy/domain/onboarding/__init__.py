"""Onboarding workflow: tenant row, Keycloak organization, first admin, quotas, activation."""
