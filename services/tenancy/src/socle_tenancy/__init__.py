"""Socle tenancy service.

The tenant registry (EPCI and member communes), onboarding, data-sharing grants, audit log
and isolation evidence.
"""
