"""Socle console service: the web console for every role."""
