"""Payload decoding: vendor codecs in a QuickJS sandbox and the field map to metrics (ADR 0020)."""

from .bundled import bundled_codec, bundled_codecs
from .fieldmap import FieldIssue, FieldMap, FieldTarget, HistorySpec, MappedUplink, Reading, map_readings
from .sandbox import (
    Codec,
    DecodedUplink,
    DecoderError,
    InvalidDecoderSource,
    SandboxLimits,
    run_codec,
    validate_source,
)
from .service import DecodingOverloaded, PayloadDecoder, Uplink

__all__ = [
    "Codec",
    "DecodedUplink",
    "DecoderError",
    "DecodingOverloaded",
    "FieldIssue",
    "FieldMap",
    "FieldTarget",
    "HistorySpec",
    "InvalidDecoderSource",
    "MappedUplink",
    "PayloadDecoder",
    "Reading",
    "SandboxLimits",
    "Uplink",
    "bundled_codec",
    "bundled_codecs",
    "map_readings",
    "run_codec",
    "validate_source",
]
