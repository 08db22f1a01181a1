"""The codecs Socle ships (``codecs/*.js``), for device models created from the catalogue."""

from __future__ import annotations

from importlib import resources

_PACKAGE = "socle_ingestion.domain.decoding.codecs"


def bundled_codecs() -> list[str]:
    """Names of the shipped codecs, e.g. ``milesight-em310-udl``."""
    return sorted(
        item.name.removesuffix(".js") for item in resources.files(_PACKAGE).iterdir() if item.name.endswith(".js")
    )


def bundled_codec(name: str) -> str:
    """Source of one shipped codec; KeyError for a name that is not shipped."""
    if name not in bundled_codecs():
        raise KeyError(name)
    return resources.files(_PACKAGE).joinpath(f"{name}.js").read_text(encoding="utf-8")
