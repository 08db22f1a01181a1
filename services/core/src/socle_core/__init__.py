"""Socle's shared core: the few things every service needs and must do the same way.

Settings, database sessions carrying the tenant context, bearer-token verification,
the problem+json error envelope, JSON logs, metrics and health. Nothing domain-specific
lives here.
"""
