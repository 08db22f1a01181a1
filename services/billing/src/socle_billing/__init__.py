"""Socle billing service: usage metering, allocation key and statements per commune."""
