"""The tamper-evident audit log: reading, exporting and verifying the per-tenant hash chains."""
