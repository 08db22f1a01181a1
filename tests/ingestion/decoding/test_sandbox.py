"""The sandbox: limits, malformed output, no I/O, upload validation and the compiled-codec cache."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from socle_ingestion.domain.decoding import (
    Codec,
    DecoderError,
    InvalidDecoderSource,
    SandboxLimits,
    run_codec,
    validate_source,
)
from socle_ingestion.domain.decoding.sandbox import STATS

RECEIVED = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
LIMITS = SandboxLimits(cpu_time_s=0.05, memory_bytes=8 * 1024 * 1024)
#: The engine checks its budget every few thousand instructions and compiles the codec first.
CPU_SLACK_S = 0.03
#: Wall-clock allowance for a 50 ms CPU budget on two cores shared with other test sessions.
WALL_SLACK_S = 5.0


def run(source: str, payload: bytes = b"\x01\x02", name: str = "essai", scope: str = "t1") -> object:
    return run_codec(Codec(name, source, scope=scope), payload, 2, RECEIVED, limits=LIMITS).data


def failure(source: str, name: str = "essai") -> DecoderError:
    with pytest.raises(DecoderError) as caught:
        run(source, name=name)
    return caught.value


def test_a_codec_sees_the_tts_and_chirpstack_input() -> None:
    source = """function decodeUplink(input) {
        return {data: {bytes: input.bytes, fPort: input.fPort, recvTime: input.recvTime.toISOString(),
                       isDate: input.recvTime instanceof Date, variables: input.variables}};
    }"""
    assert run(source, b"\x00\xff") == {
        "bytes": [0, 255],
        "fPort": 2,
        "recvTime": "2026-11-30T08:00:00.000Z",
        "isDate": True,
        "variables": {},
    }


def test_a_throwing_decoder_is_named_with_its_message() -> None:
    error = failure("function decodeUplink(i) { throw new TypeError('octet 3 inattendu'); }", name="capteur-x")
    assert error.reason == "exception"
    assert error.decoder == "capteur-x"
    assert error.message == "Décodeur « capteur-x » : le décodeur a levé une exception : TypeError: octet 3 inattendu."


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("return 42;", "decodeUplink doit renvoyer un objet {data, warnings, errors}"),
        ("return;", "decodeUplink doit renvoyer un objet {data, warnings, errors}"),
        ("return [1, 2];", "decodeUplink doit renvoyer un objet {data, warnings, errors}"),
        ("return {data: 5};", "« data » doit être un objet"),
        ("return {};", "« data » doit être un objet"),
        ("return {data: {}, warnings: 'attention'};", "« warnings » doit être une liste de textes"),
        ("return {data: {}, errors: [1]};", "« errors » doit être une liste de textes"),
        ("return {data: {a: function () {}}, warnings: [{}]};", "« warnings » doit être une liste de textes"),
        ("return {data: {big: 'x'.repeat(70000)}};", "le résultat dépasse 65536 octets"),
    ],
)
def test_garbage_output_is_refused(body: str, why: str) -> None:
    error = failure(f"function decodeUplink(i) {{ {body} }}")
    assert error.reason == "invalid_output"
    assert error.message == f"Décodeur « essai » : sortie invalide, {why}."


def test_a_cyclic_output_is_an_exception_not_a_crash() -> None:
    error = failure("function decodeUplink(i) { var d = {}; d.self = d; return {data: d}; }")
    assert error.reason == "exception"
    assert "TypeError" in error.message


def test_errors_returned_by_the_codec_reject_the_uplink() -> None:
    error = failure("function decodeUplink(i) { return {errors: ['port inconnu', 'longueur 3']}; }")
    assert error.reason == "decoder_errors"
    assert error.message == "Décodeur « essai » : trame refusée par le décodeur : port inconnu ; longueur 3."


def test_an_endless_decoder_is_interrupted_within_its_budget() -> None:
    started, cpu = time.monotonic(), time.thread_time()
    error = failure("function decodeUplink(i) { while (true) {} }")
    assert error.reason == "timeout"
    assert error.message == "Décodeur « essai » : le décodeur a dépassé sa limite de temps de calcul (50 ms)."
    # The budget is CPU time: precise whatever the load; wall time only bounded loosely.
    assert time.thread_time() - cpu < LIMITS.cpu_time_s + CPU_SLACK_S
    assert time.monotonic() - started < WALL_SLACK_S


@pytest.mark.parametrize(
    "body",
    [
        "var a = []; while (true) { a.push(new Array(1000).fill(1)); }",
        "var a = []; while (true) { a.push('morceau-' + a.length); }",
        "var a = new ArrayBuffer(64 * 1024 * 1024); return {data: {n: a.byteLength}};",
    ],
)
def test_a_memory_bomb_hits_the_memory_limit(body: str) -> None:
    cpu = time.thread_time()
    error = failure(f"function decodeUplink(i) {{ {body} }}")
    assert error.reason == "memory"
    assert error.message == "Décodeur « essai » : le décodeur a dépassé sa limite de mémoire (8 Mio)."
    assert time.thread_time() - cpu < LIMITS.cpu_time_s + CPU_SLACK_S


def test_unbounded_recursion_is_a_stack_overflow() -> None:
    error = failure("function f(n) { return f(n + 1) + 1; } function decodeUplink(i) { return f(0); }")
    assert error.reason in {"stack_overflow", "exception"}
    assert "pile" in error.message or "call stack" in error.message


@pytest.mark.parametrize(
    "name",
    [
        "require",
        "fetch",
        "XMLHttpRequest",
        "WebSocket",
        "std",
        "os",
        "process",
        "setTimeout",
        "setInterval",
        "console",
        "print",
        "scriptArgs",
        "Deno",
        "Bun",
    ],
)
def test_no_io_global_is_reachable(name: str) -> None:
    probe = f"{{kind: typeof {name}, viaThis: typeof globalThis['{name}']}}"
    source = f"function decodeUplink(i) {{ return {{data: {probe}}}; }}"
    assert run(source) == {"kind": "undefined", "viaThis": "undefined"}


def test_modules_cannot_be_imported() -> None:
    # Dynamic import resolves nothing: the promise is rejected and no job queue runs it anyway.
    source = """var outcome = 'pending';
    import('os').then(function () { outcome = 'loaded'; }, function (e) { outcome = 'refused'; });
    function decodeUplink(i) { return {data: {outcome: outcome}}; }"""
    assert run(source) == {"outcome": "pending"}
    with pytest.raises(InvalidDecoderSource) as caught:
        validate_source("import * as os from 'os';\nfunction decodeUplink(i) { return {data: {}}; }", name="m")
    assert caught.value.errors[0]["field"] == "decoder"
    assert "ne se charge pas" in caught.value.detail


def test_validation_accepts_a_codec_and_returns_its_hash() -> None:
    source = "function decodeUplink(i) { return {data: {}}; }"
    assert validate_source(source) == Codec("x", source).sha256


@pytest.mark.parametrize(
    ("source", "detail"),
    [
        (
            "function decodeUplink(i) { return {data: {}; }",
            "Décodeur « capteur » : le code du décodeur ne se charge pas : SyntaxError: Unexpected token ';'.",
        ),
        ("function decode(bytes) { return {}; }", "Décodeur « capteur » : il ne définit pas de fonction decodeUplink."),
        ("var decodeUplink = 3;", "Décodeur « capteur » : il ne définit pas de fonction decodeUplink."),
        (
            "while (true) {}\nfunction decodeUplink(i) { return {data: {}}; }",
            "Décodeur « capteur » : le décodeur a dépassé sa limite de temps de calcul (50 ms).",
        ),
        (
            "throw new Error('init');\nfunction decodeUplink(i) { return {data: {}}; }",
            "Décodeur « capteur » : le code du décodeur ne se charge pas : Error: init.",
        ),
        (
            "// " + "x" * 300_000 + "\nfunction decodeUplink(i) { return {data: {}}; }",
            "Le décodeur fait 300051 octets, au-delà de la limite de 262144 octets.",
        ),
    ],
)
def test_validation_refuses_a_broken_codec_precisely(source: str, detail: str) -> None:
    with pytest.raises(InvalidDecoderSource) as caught:
        validate_source(source, name="capteur", field_name="decoder_source")
    problem = caught.value
    assert (problem.status, problem.slug) == (422, "validation-error")
    assert problem.detail == detail
    assert problem.errors == [{"location": "body", "field": "decoder_source", "detail": detail}]


def test_decoding_a_thousand_uplinks_compiles_once() -> None:
    source = "function decodeUplink(i) { return {data: {first: i.bytes[0]}}; }"
    codec = Codec("cache", source, scope="tenant-cache")
    before = STATS.compilations
    for n in range(1000):
        assert run_codec(codec, bytes([n % 256]), 1, RECEIVED).data == {"first": n % 256}
    assert STATS.compilations == before + 1
    # The same source under another tenant gets its own runtime.
    run_codec(Codec("cache", source, scope="tenant-other"), b"\x00", 1, RECEIVED)
    assert STATS.compilations == before + 2


def test_codec_state_never_crosses_tenants() -> None:
    source = """var seen = [];
    function decodeUplink(i) { seen.push(i.bytes[0]); return {data: {seen: seen.length, first: seen[0]}}; }"""
    assert run(source, b"\x07", scope="tenant-a") == {"seen": 1, "first": 7}
    assert run(source, b"\x09", scope="tenant-b") == {"seen": 1, "first": 9}


def test_a_runtime_that_ran_out_of_time_is_rebuilt() -> None:
    source = """var calls = 0;
    function decodeUplink(i) { calls++; if (i.bytes[0] === 1) { while (true) {} } return {data: {calls: calls}}; }"""
    codec = Codec("reprise", source, scope="tenant-reset")
    assert run_codec(codec, b"\x00", 1, RECEIVED, limits=LIMITS).data == {"calls": 1}
    with pytest.raises(DecoderError):
        run_codec(codec, b"\x01", 1, RECEIVED, limits=LIMITS)
    assert run_codec(codec, b"\x00", 1, RECEIVED, limits=LIMITS).data == {"calls": 1}


def test_a_runtime_hoarding_memory_between_calls_is_dropped() -> None:
    limits = SandboxLimits(max_retained_bytes=512 * 1024, retained_check_every=8)
    source = """var hoard = [];
    function decodeUplink(i) { hoard.push('x'.repeat(100000) + hoard.length); return {data: {held: hoard.length}}; }"""
    codec = Codec("avare", source, scope="tenant-hoard")
    held = [run_codec(codec, b"", 1, RECEIVED, limits=limits).data["held"] for _ in range(10)]
    # Checked after the 8th call (~800 KB retained): the runtime is rebuilt, its hoard gone.
    assert held == [1, 2, 3, 4, 5, 6, 7, 8, 1, 2]
