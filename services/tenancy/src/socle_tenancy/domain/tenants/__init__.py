"""The tenant registry: the EPCI, its member communes as candidates and tenants, lifecycle."""
