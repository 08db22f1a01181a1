"""Data-sharing grants: a tenant lets another read a dataset or one device, until a date."""
