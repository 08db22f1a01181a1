"""Offboarding: a tenant leaves with a full export bundle, then its data and organization go.

The API side (``controllers``, ``services``) moves the tenant through its lifecycle and
handles its Keycloak organization; the command side (``bundle``, ``cli``) reads and deletes
the tenant's rows in every service's database, with each service's application role and
the tenant context set, so row-level security itself bounds what it can touch.
"""
