"""Decode uplinks off the event loop, with bounded concurrency and bounded waiting (ADR 0020).

The ways in call :meth:`PayloadDecoder.decode` for each uplink. Values the network server
already decoded (TTS ``decoded_payload``, ChirpStack ``object``) are taken as they are unless
the integration asks to decode the raw bytes itself; otherwise the device model's codec runs
in a worker thread (QuickJS releases the GIL while it computes). A slow codec holds one worker
for at most its CPU budget, so it delays the others by that much and never blocks the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .sandbox import Codec, DecodedUplink, DecoderError, SandboxLimits, run_codec


class DecodingOverloaded(Exception):
    """More uplinks wait for a decoder than the pool accepts; the caller answers 503 and the sender retries."""


@dataclass(frozen=True)
class Uplink:
    """One uplink to decode, as the ways in hand it over."""

    codec: Codec | None
    payload: bytes
    f_port: int | None
    received_at: datetime
    #: TTS ``decoded_payload`` or ChirpStack ``object`` when the network server decoded it.
    network_decoded: Mapping[str, Any] | None = None
    #: An integration that distrusts the network server's formatter sets this to False.
    use_network_decoded: bool = True
    variables: dict[str, str] | None = None


def _from_network(uplink: Uplink) -> DecodedUplink | DecoderError | None:
    """Network-server values when they are to be used, a DecoderError when nothing can decode, else None."""
    if uplink.network_decoded is not None and uplink.use_network_decoded:
        if not isinstance(uplink.network_decoded, Mapping):
            return DecoderError(
                "serveur réseau",
                "invalid_output",
                "Les valeurs décodées par le serveur réseau ne forment pas un objet JSON.",
            )
        return DecodedUplink(data=dict(uplink.network_decoded), source="network")
    if uplink.codec is None:
        return DecoderError(
            "aucun",
            "no_decoder",
            "Aucun décodeur n'est associé au modèle de l'équipement et le serveur réseau n'a pas envoyé "
            "de valeurs décodées.",
        )
    return None


class PayloadDecoder:
    """A pool of decoding threads; one per process, created in the app's lifespan and closed with it."""

    def __init__(
        self, *, workers: int = 2, max_pending: int = 1024, chunk: int = 64, limits: SandboxLimits | None = None
    ) -> None:
        self.limits = limits or SandboxLimits()
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="socle-decoder")
        self._max_pending = max_pending
        self._chunk = chunk
        self._pending = 0

    def _run_chunk(self, work: Sequence[tuple[Codec, Uplink]]) -> list[DecodedUplink | DecoderError]:
        results: list[DecodedUplink | DecoderError] = []
        for codec, uplink in work:
            try:
                results.append(
                    run_codec(
                        codec,
                        uplink.payload,
                        uplink.f_port,
                        uplink.received_at,
                        variables=uplink.variables,
                        limits=self.limits,
                    )
                )
            except DecoderError as exc:
                results.append(exc)
        return results

    async def decode_many(self, uplinks: Sequence[Uplink]) -> list[DecodedUplink | DecoderError]:
        """Each uplink's decoded fields or its DecoderError, in order; one thread hop per chunk, not per uplink.

        Raises DecodingOverloaded, deciding nothing, when the queue cannot take them all.
        """
        results: list[DecodedUplink | DecoderError | None] = [_from_network(u) for u in uplinks]
        todo = [index for index, result in enumerate(results) if result is None]
        codecs = {index: codec for index in todo if (codec := uplinks[index].codec) is not None}
        if not todo:
            return [r for r in results if r is not None]
        if self._pending + len(todo) > self._max_pending:
            raise DecodingOverloaded(f"{self._pending} trames attendent déjà un décodeur.")
        self._pending += len(todo)
        try:
            loop = asyncio.get_running_loop()
            chunks = [todo[i : i + self._chunk] for i in range(0, len(todo), self._chunk)]
            decoded = await asyncio.gather(
                *(
                    loop.run_in_executor(self._executor, self._run_chunk, [(codecs[i], uplinks[i]) for i in chunk])
                    for chunk in chunks
                )
            )
        finally:
            self._pending -= len(todo)
        for chunk, chunk_results in zip(chunks, decoded, strict=True):
            for index, result in zip(chunk, chunk_results, strict=True):
                results[index] = result
        return [r for r in results if r is not None]

    async def decode(self, uplink: Uplink) -> DecodedUplink:
        """Decoded fields of one uplink, or DecoderError saying which decoder failed and why."""
        (result,) = await self.decode_many([uplink])
        if isinstance(result, DecoderError):
            raise result
        return result

    def close(self) -> None:
        """Stop the worker threads once the queued uplinks are decoded."""
        self._executor.shutdown(wait=True)
