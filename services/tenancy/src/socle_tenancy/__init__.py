"""Socle tenancy service: the tenant registry (EPCI and member communes), onboarding, data-sharing grants, audit log and isolation evidence."""
