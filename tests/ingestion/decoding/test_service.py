"""The decoding pool: bad codecs fail alone, the event loop keeps running, network values are used."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from socle_ingestion.domain.decoding import (
    Codec,
    DecodedUplink,
    DecoderError,
    DecodingOverloaded,
    PayloadDecoder,
    SandboxLimits,
    Uplink,
    bundled_codec,
)

RECEIVED = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
EM310 = Codec("milesight-em310-udl", bundled_codec("milesight-em310-udl"), scope="tenant-a")
FRAME = bytes.fromhex("01755C03824408040001")
BAD = {
    "throwing": "function decodeUplink(i) { throw new Error('panne'); }",
    "garbage": "function decodeUplink(i) { return 'n importe quoi'; }",
    "endless": "function decodeUplink(i) { while (true) {} }",
    "memory-bomb": "function decodeUplink(i) { var a = []; while (true) { a.push(new Array(1000).fill(1)); } }",
}
EXPECTED_REASON = {"throwing": "exception", "garbage": "invalid_output", "endless": "timeout", "memory-bomb": "memory"}


@pytest.fixture
def decoder() -> Iterator[PayloadDecoder]:
    pool = PayloadDecoder(workers=2, limits=SandboxLimits(cpu_time_s=0.05, memory_bytes=8 * 1024 * 1024))
    yield pool
    pool.close()


async def ticks_until(done: asyncio.Future[object]) -> int:
    """5 ms ticks the event loop managed while ``done`` was pending; none if decoding blocked the loop."""
    ticks = 0
    while not done.done():
        await asyncio.sleep(0.005)
        ticks += 1
    return ticks


async def test_bad_codecs_fail_alone_while_100_good_uplinks_succeed(decoder: PayloadDecoder) -> None:
    good = [decoder.decode(Uplink(codec=EM310, payload=FRAME, f_port=85, received_at=RECEIVED)) for _ in range(100)]
    bad = [
        decoder.decode(
            Uplink(codec=Codec(name, source, scope="tenant-b"), payload=FRAME, f_port=85, received_at=RECEIVED)
        )
        for name, source in BAD.items()
        for _ in range(2)
    ]
    started = time.monotonic()
    results = await asyncio.gather(*bad[:4], *good[:50], *bad[4:], *good[50:], return_exceptions=True)
    elapsed = time.monotonic() - started

    decoded = [r for r in results if isinstance(r, DecodedUplink)]
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(decoded) == 100
    assert all(r.data == {"battery": 92, "distance": 2116, "position": "tilt"} for r in decoded)
    assert len(errors) == 8
    assert all(isinstance(e, DecoderError) for e in errors)
    assert sorted((e.decoder, e.reason) for e in errors if isinstance(e, DecoderError)) == sorted(
        (name, EXPECTED_REASON[name]) for name in BAD for _ in range(2)
    )
    # Eight failures of at most 50 ms of CPU each on two workers, plus 100 fast decodes (about 4 ms of CPU):
    # under a second of wall time on an idle machine, with slack for two cores shared by other sessions.
    assert elapsed < 10.0


async def test_an_endless_decoder_does_not_block_the_event_loop() -> None:
    pool = PayloadDecoder(workers=1, limits=SandboxLimits(cpu_time_s=0.5))
    try:
        endless = Codec("endless", BAD["endless"])
        call = asyncio.ensure_future(pool.decode(Uplink(codec=endless, payload=b"", f_port=1, received_at=RECEIVED)))
        ticks = await ticks_until(call)
        with pytest.raises(DecoderError):
            await call
        # 500 ms of CPU in the worker: the loop ticks all along (a blocked loop would tick once at most).
        assert ticks >= 20
    finally:
        pool.close()


async def test_network_server_values_are_used_instead_of_the_codec(decoder: PayloadDecoder) -> None:
    endless = Codec("endless", BAD["endless"])
    result = await decoder.decode(
        Uplink(codec=endless, payload=FRAME, f_port=85, received_at=RECEIVED, network_decoded={"distance": 1500})
    )
    assert result == DecodedUplink(data={"distance": 1500}, source="network")
    # An integration that distrusts the network server's formatter decodes the bytes itself.
    result = await decoder.decode(
        Uplink(
            codec=EM310,
            payload=FRAME,
            f_port=85,
            received_at=RECEIVED,
            network_decoded={"distance": 1500},
            use_network_decoded=False,
        )
    )
    assert result.source == "codec"
    assert result.data["distance"] == 2116


async def test_no_codec_and_no_network_values_is_a_clear_error(decoder: PayloadDecoder) -> None:
    with pytest.raises(DecoderError) as caught:
        await decoder.decode(Uplink(codec=None, payload=FRAME, f_port=85, received_at=RECEIVED))
    assert caught.value.reason == "no_decoder"
    assert caught.value.message.startswith("Aucun décodeur n'est associé au modèle")


async def test_network_values_that_are_not_an_object_are_refused(decoder: PayloadDecoder) -> None:
    with pytest.raises(DecoderError) as caught:
        await decoder.decode(Uplink(codec=None, payload=FRAME, f_port=85, received_at=RECEIVED, network_decoded=[1, 2]))  # type: ignore[arg-type]
    assert caught.value.reason == "invalid_output"


async def test_the_pool_sheds_load_beyond_its_queue() -> None:
    pool = PayloadDecoder(workers=1, max_pending=3, limits=SandboxLimits(cpu_time_s=0.05))
    try:
        slow = Codec("lent", BAD["endless"])
        calls = [pool.decode(Uplink(codec=slow, payload=b"", f_port=1, received_at=RECEIVED)) for _ in range(5)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert [type(r).__name__ for r in results].count("DecodingOverloaded") == 2
        assert all(isinstance(r, DecoderError | DecodingOverloaded) for r in results)
    finally:
        pool.close()


async def test_throughput_per_core(decoder: PayloadDecoder, capsys: pytest.CaptureFixture[str]) -> None:
    """Measures uplinks per CPU-second of the EM310-UDL codec: in the calling thread, through the pool
    one uplink at a time (a thread hop each) and in batches (one hop per chunk of 64)."""
    from socle_ingestion.domain.decoding import run_codec

    count = 5000
    started = time.process_time()
    for _ in range(count):
        run_codec(EM310, FRAME, 85, RECEIVED)
    per_core = count / (time.process_time() - started)

    cpu = time.process_time()
    for _ in range(count // 1000):
        await asyncio.gather(
            *(decoder.decode(Uplink(codec=EM310, payload=FRAME, f_port=85, received_at=RECEIVED)) for _ in range(1000))
        )
    single_cpu = count / (time.process_time() - cpu)

    batch = [Uplink(codec=EM310, payload=FRAME, f_port=85, received_at=RECEIVED) for _ in range(1000)]
    cpu = time.process_time()
    for _ in range(count // 1000):
        results = await decoder.decode_many(batch)
    batch_cpu = count / (time.process_time() - cpu)
    assert all(isinstance(r, DecodedUplink) for r in results)
    with capsys.disabled():
        print(
            f"\ndecoding (uplinks per CPU-second, {os.cpu_count()} cores): direct={per_core:.0f} "
            f"pool_single={single_cpu:.0f} pool_batch={batch_cpu:.0f}"
        )
    assert per_core > 2000
    assert batch_cpu > 2000


async def test_decode_many_keeps_order_and_isolates_failures(decoder: PayloadDecoder) -> None:
    throwing = Codec("throwing", BAD["throwing"])
    uplinks = [
        Uplink(codec=EM310, payload=FRAME, f_port=85, received_at=RECEIVED),
        Uplink(codec=throwing, payload=FRAME, f_port=85, received_at=RECEIVED),
        Uplink(codec=None, payload=FRAME, f_port=85, received_at=RECEIVED, network_decoded={"co2": 420}),
        Uplink(codec=None, payload=FRAME, f_port=85, received_at=RECEIVED),
    ] * 40
    results = await decoder.decode_many(uplinks)
    assert len(results) == 160
    for index in range(0, 160, 4):
        first, second, third, fourth = results[index : index + 4]
        assert isinstance(first, DecodedUplink)
        assert first.data["distance"] == 2116
        assert isinstance(second, DecoderError)
        assert second.reason == "exception"
        assert third == DecodedUplink(data={"co2": 420}, source="network")
        assert isinstance(fourth, DecoderError)
        assert fourth.reason == "no_decoder"
