"""Tenants as code: apply a tenant declaration file through the tenancy API.

``socle-tenants apply FILE`` (or ``python -m socle_tenancy.domain.declarations apply FILE``)
validates the file, reads what the platform holds through the API, shows the difference
and, unless ``--dry-run``, makes the platform match it. Applying twice changes nothing.
"""
