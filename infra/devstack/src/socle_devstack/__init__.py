"""Starts Socle's real components as local processes: PostgreSQL, Keycloak, the services.

Used by ``make up`` (long-running, ports from the environment) and by the test suite
(throw-away instances on free ports). No Docker engine is needed: every component is a
process this package installs, starts, waits for and stops.
"""
