"""Faults a healthy server never produces on demand, injected in front of the real one.

``Faults`` is an httpx transport: every request goes to the real network, except the first
ones matching a method and path, which get the next of the given faults instead (an httpx
error raised, or an HTTP status answered). The rest of the conversation is with the real
server. Every request is recorded with what answered it, so a test can count the retries.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

#: An httpx error class to raise (``httpx.ConnectError``, ``httpx.ReadTimeout``...) or a status to answer.
Fault = type[httpx.TransportError] | int


@dataclass(frozen=True)
class Call:
    request: httpx.Request
    answer: int | str  # the status code, or the name of the error raised
    injected: bool


class Faults(httpx.AsyncBaseTransport):
    """The real network, except that the first requests matching ``method`` and ``path`` get ``faults``, in order.

    ``method`` None matches any method; ``path`` matches the end of the URL's path. With no
    faults, the transport only records the calls.
    """

    def __init__(
        self, *faults: Fault, method: str | None = None, path: str = "", message: str = "injected fault"
    ) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._faults = list(faults)
        self._method = method
        self._path = path
        self._message = message
        self.calls: list[Call] = []

    @property
    def injected(self) -> int:
        return sum(call.injected for call in self.calls)

    def matching(self) -> list[Call]:
        """The calls that matched the rule (injected or passed through)."""
        return [call for call in self.calls if self._matches(call.request)]

    def _matches(self, request: httpx.Request) -> bool:
        return self._method in (None, request.method) and request.url.path.endswith(self._path)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._faults and self._matches(request):
            fault = self._faults.pop(0)
            if isinstance(fault, int):
                self.calls.append(Call(request, fault, injected=True))
                return httpx.Response(fault, text=self._message, request=request)
            self.calls.append(Call(request, fault.__name__, injected=True))
            raise fault(self._message, request=request)
        try:
            response = await self._inner.handle_async_request(request)
        except httpx.TransportError as exc:
            self.calls.append(Call(request, type(exc).__name__, injected=False))
            raise
        self.calls.append(Call(request, response.status_code, injected=False))
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
