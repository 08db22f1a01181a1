"""The tenant context as a type.

A ``TenantId`` can only be produced by the authentication layer (``socle_core.auth``):
from a verified token, from an authenticated device credential, or by an explicitly
named system task. Code that needs a tenant takes a ``TenantId``, so a tenant taken from
a payload or a URL cannot reach the database session by accident.
"""

from __future__ import annotations

from typing import Final
from uuid import UUID


class _IssuerToken:
    """Capability held by the auth layer; without it a TenantId cannot be built."""

    __slots__ = ()


_ISSUER: Final = _IssuerToken()


class TenantId:
    """The identifier of the tenant (commune or EPCI) a unit of work acts for."""

    __slots__ = ("_value",)

    def __init__(self, value: UUID, *, _issuer: object) -> None:
        if _issuer is not _ISSUER:
            raise TypeError("a TenantId is produced only by socle_core.auth")
        if not isinstance(value, UUID):
            raise TypeError("a TenantId wraps a UUID")
        self._value = value

    @property
    def uuid(self) -> UUID:
        return self._value

    def __str__(self) -> str:
        return str(self._value)

    def __repr__(self) -> str:
        return f"TenantId({self._value})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TenantId) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("TenantId", self._value))


def _issue(value: UUID) -> TenantId:
    """Only for socle_core.auth."""
    return TenantId(value, _issuer=_ISSUER)
