"""Socle timeseries service: storage and queries of readings, exports and open data."""
