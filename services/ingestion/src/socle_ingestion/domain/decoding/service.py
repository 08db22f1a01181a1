"""Decode uplinks off the event loop, with bounded concurrency and bounded waiting (ADR 0020).

The ways in call :meth:`PayloadDecoder.decode` for each uplink. Values the network server
already decoded (TTS ``decoded_payload``, ChirpStack ``object``) are taken as they are unless
the integration asks to decode the raw bytes itself; otherwise the device model's codec runs
in a worker thread (QuickJS releases the GIL while it computes). A slow codec holds one worker
for at most its CPU budget, so it delays the others by that much and never blocks the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from .sandbox import Codec, DecodedUplink, DecoderError, SandboxLimits, run_codec


class DecodingOverloaded(Exception):
    """More uplinks wait for a decoder than the pool accepts; the caller answers 503 and the sender retries."""


class PayloadDecoder:
    """A pool of decoding threads; one per process, created in the app's lifespan and closed with it."""

    def __init__(self, *, workers: int = 2, max_pending: int = 1024, limits: SandboxLimits | None = None) -> None:
        self.limits = limits or SandboxLimits()
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="socle-decoder")
        self._max_pending = max_pending
        self._pending = 0

    async def decode(
        self,
        *,
        codec: Codec | None,
        payload: bytes,
        f_port: int | None,
        received_at: datetime,
        network_decoded: Mapping[str, Any] | None = None,
        use_network_decoded: bool = True,
        variables: dict[str, str] | None = None,
    ) -> DecodedUplink:
        """Decoded fields of one uplink, or DecoderError saying which decoder failed and why."""
        if network_decoded is not None and use_network_decoded:
            if not isinstance(network_decoded, Mapping):
                raise DecoderError(
                    "serveur réseau",
                    "invalid_output",
                    "Les valeurs décodées par le serveur réseau ne forment pas un objet JSON.",
                )
            return DecodedUplink(data=dict(network_decoded), source="network")
        if codec is None:
            raise DecoderError(
                "aucun",
                "no_decoder",
                "Aucun décodeur n'est associé au modèle de l'équipement et le serveur réseau n'a pas envoyé "
                "de valeurs décodées.",
            )
        if self._pending >= self._max_pending:
            raise DecodingOverloaded(f"{self._pending} trames attendent déjà un décodeur.")
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._executor,
                lambda: run_codec(codec, payload, f_port, received_at, variables=variables, limits=self.limits),
            )
        finally:
            self._pending -= 1

    def close(self) -> None:
        """Stop the worker threads once the queued uplinks are decoded."""
        self._executor.shutdown(wait=True)
