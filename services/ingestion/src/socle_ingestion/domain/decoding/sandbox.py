"""Run a vendor's JavaScript codec in a QuickJS sandbox, one uplink at a time (ADR 0020).

A codec follows the interface that The Things Stack and ChirpStack v4 share:
``decodeUplink({bytes, fPort, recvTime, variables}) -> {data, warnings, errors}``. Each codec
runs in its own QuickJS runtime with a memory ceiling and a CPU-time budget per call; the
engine has no ``std``/``os`` modules, no ``require``, ``fetch``, timers or console, so a codec
can compute and nothing else. Compiled runtimes are cached per worker thread by (scope, source
hash): QuickJS runtimes must stay on the thread that created them, and the scope (the tenant)
keeps a codec's global state from carrying one tenant's payloads into another's output.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import quickjs

from socle_core.errors import InvalidInput

#: Calls the codec through references taken before the codec's own code runs, so a codec
#: that replaces ``JSON`` or ``Date`` only breaks itself; the result crosses as JSON text.
_INVOKE = """
var __socle_invoke = (function (parse, stringify, DateCtor, g) {
  return function (inputJson) {
    var input = parse(inputJson);
    input.recvTime = new DateCtor(input.recvTime);
    var out = g.decodeUplink(input);
    var text = stringify(out === undefined ? null : out);
    return text === undefined ? "null" : text;
  };
})(JSON.parse, JSON.stringify, Date, globalThis);
"""


@dataclass(frozen=True)
class SandboxLimits:
    """Per-call ceilings; defaults leave a typical codec (~30 µs a call, ~110 KB of heap) a wide margin.

    Cached runtimes hold at most ``workers * cache_size * memory_bytes``; a runtime found
    retaining more than ``max_retained_bytes`` between calls (checked every
    ``retained_check_every`` calls, the check costs ~65 µs) is dropped and recompiled.
    """

    cpu_time_s: float = 0.05
    memory_bytes: int = 8 * 1024 * 1024
    max_source_bytes: int = 256 * 1024
    max_output_bytes: int = 64 * 1024
    cache_size: int = 32
    max_retained_bytes: int = 1024 * 1024
    retained_check_every: int = 64


@dataclass(frozen=True)
class Codec:
    """A decoder as stored by the registry: its label for error messages, its source, its tenant scope."""

    name: str
    source: str
    scope: str = ""
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", hashlib.sha256(self.source.encode()).hexdigest())


@dataclass(frozen=True)
class DecodedUplink:
    """What a codec (or the network server) made of one uplink."""

    data: dict[str, Any]
    warnings: tuple[str, ...] = ()
    source: str = "codec"


class DecoderError(Exception):
    """An uplink the codec could not decode; ``reason`` is stable, ``message`` is for people (French)."""

    def __init__(self, decoder: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.decoder = decoder
        self.reason = reason
        self.message = message


class InvalidDecoderSource(InvalidInput):
    """A codec refused on upload, with the field that carried it and why."""


@dataclass
class _Compiled:
    context: quickjs.Context
    invoke: Any
    calls: int = 0


@dataclass
class _Stats:
    compilations: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def compiled(self) -> None:
        with self.lock:
            self.compilations += 1


STATS = _Stats()
_local = threading.local()


def _cache() -> OrderedDict[tuple[str, str], _Compiled]:
    cache: OrderedDict[tuple[str, str], _Compiled] | None = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = OrderedDict()
    return cache


def _out_of_memory(text: str, context: quickjs.Context, limits: SandboxLimits) -> bool:
    """QuickJS throws ``null`` when it cannot even allocate its out-of-memory error.

    A codec that throws ``null`` itself is reported the same way; no vendor codec does.
    """
    if "out of memory" in text or text.strip() == "null":
        return True
    return int(context.memory().get("malloc_size", 0)) >= limits.memory_bytes * 0.9


def _describe(exc: Exception, context: quickjs.Context, limits: SandboxLimits) -> tuple[str, str]:
    """Turn an engine exception into (reason, French explanation)."""
    text = str(exc)
    if isinstance(exc, quickjs.StackOverflow):
        return "stack_overflow", "la pile d'appels a débordé (récursion trop profonde)"
    if "interrupted" in text:
        return "timeout", f"le décodeur a dépassé sa limite de temps de calcul ({limits.cpu_time_s * 1000:.0f} ms)"
    if _out_of_memory(text, context, limits):
        return "memory", f"le décodeur a dépassé sa limite de mémoire ({limits.memory_bytes // (1024 * 1024)} Mio)"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return "exception", f"le décodeur a levé une exception : {first[:300]}"


def _compile(codec: Codec, limits: SandboxLimits) -> _Compiled:
    """Load a codec into a fresh runtime; raises DecoderError if it does not define decodeUplink."""
    context = quickjs.Context()
    context.set_memory_limit(limits.memory_bytes)
    context.set_time_limit(limits.cpu_time_s)
    context.eval(_INVOKE)
    invoke = context.get("__socle_invoke")
    try:
        context.eval(codec.source)
        kind = context.eval("typeof decodeUplink")
    except quickjs.JSException as exc:
        reason, message = _describe(exc, context, limits)
        if reason == "exception":
            reason, message = "compile", f"le code du décodeur ne se charge pas : {str(exc).strip().splitlines()[0]}"
        raise DecoderError(codec.name, reason, f"Décodeur « {codec.name} » : {message}.") from exc
    if kind != "function":
        raise DecoderError(
            codec.name, "missing_function", f"Décodeur « {codec.name} » : il ne définit pas de fonction decodeUplink."
        )
    STATS.compiled()
    return _Compiled(context, invoke)


def _compiled(codec: Codec, limits: SandboxLimits) -> _Compiled:
    cache = _cache()
    key = (codec.scope, codec.sha256)
    entry = cache.get(key)
    if entry is None:
        entry = _compile(codec, limits)
        cache[key] = entry
        while len(cache) > limits.cache_size:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)
    return entry


def validate_source(
    source: str, *, name: str = "décodeur", field_name: str = "decoder", limits: SandboxLimits | None = None
) -> str:
    """Check a codec before the registry stores it: size, syntax, top-level run, decodeUplink; returns its hash."""
    limits = limits or SandboxLimits()
    size = len(source.encode())
    if size > limits.max_source_bytes:
        detail = f"Le décodeur fait {size} octets, au-delà de la limite de {limits.max_source_bytes} octets."
    else:
        try:
            codec = Codec(name, source, scope="validation")
            _compile(codec, limits)
            return codec.sha256
        except DecoderError as exc:
            detail = exc.message
    raise InvalidDecoderSource(detail, errors=[{"location": "body", "field": field_name, "detail": detail}])


def _check_output(codec: Codec, text: Any, limits: SandboxLimits) -> DecodedUplink:
    def invalid(why: str) -> DecoderError:
        return DecoderError(codec.name, "invalid_output", f"Décodeur « {codec.name} » : sortie invalide, {why}.")

    if not isinstance(text, str):
        raise invalid("le résultat n'est pas sérialisable en JSON")
    if len(text) > limits.max_output_bytes:
        raise invalid(f"le résultat dépasse {limits.max_output_bytes} octets")
    out = json.loads(text)
    if not isinstance(out, dict):
        raise invalid("decodeUplink doit renvoyer un objet {data, warnings, errors}")
    warnings, errors = out.get("warnings", []), out.get("errors", [])
    for key, value in (("warnings", warnings), ("errors", errors)):
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise invalid(f"« {key} » doit être une liste de textes")
    if errors:
        shown = " ; ".join(item[:200] for item in errors[:5])
        raise DecoderError(
            codec.name, "decoder_errors", f"Décodeur « {codec.name} » : trame refusée par le décodeur : {shown}."
        )
    data = out.get("data")
    if not isinstance(data, dict):
        raise invalid("« data » doit être un objet")
    return DecodedUplink(data=data, warnings=tuple(warnings), source="codec")


def run_codec(
    codec: Codec,
    payload: bytes,
    f_port: int | None,
    received_at: datetime,
    *,
    variables: dict[str, str] | None = None,
    limits: SandboxLimits | None = None,
) -> DecodedUplink:
    """Decode one uplink on the calling thread (the pool calls this off the event loop)."""
    limits = limits or SandboxLimits()
    entry = _compiled(codec, limits)
    stamp = received_at.timestamp() * 1000
    if not math.isfinite(stamp):
        raise ValueError("received_at must be a finite instant")
    argument = json.dumps(
        {"bytes": list(payload), "fPort": f_port, "recvTime": stamp, "variables": variables or {}},
        separators=(",", ":"),
    )
    try:
        text = entry.invoke(argument)
    except quickjs.JSException as exc:
        reason, message = _describe(exc, entry.context, limits)
        if reason != "exception":  # an interrupted or exhausted runtime is not reused
            _cache().pop((codec.scope, codec.sha256), None)
        raise DecoderError(codec.name, reason, f"Décodeur « {codec.name} » : {message}.") from exc
    entry.calls += 1
    if entry.calls % limits.retained_check_every == 0 and _retained(entry) > limits.max_retained_bytes:
        _cache().pop((codec.scope, codec.sha256), None)
    return _check_output(codec, text, limits)


def _retained(entry: _Compiled) -> int:
    return int(entry.context.memory().get("malloc_size", 0))
