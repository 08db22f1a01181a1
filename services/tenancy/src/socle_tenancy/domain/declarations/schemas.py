"""What applying a declaration would change, as plain data (printed or dumped as JSON)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class DesiredTenant:
    """A tenant as the declaration wants it."""

    key: str
    kind: str
    code: str
    """SIREN of the EPCI, INSEE code of a commune."""
    pointer: str
    """Where the declaration says it, e.g. ``/communes/2``."""
    display_name: str | None
    email_domains: list[str]
    first_admin_email: str | None
    quotas: dict[str, int]


@dataclass(frozen=True)
class Change:
    """One API call that moves the platform towards the declaration."""

    action: str
    """``register_epci``, ``onboard``, ``update_tenant`` or ``update_quotas``."""
    tenant: str
    summary: str
    method: str
    path: str
    body: dict[str, Any]
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the declaration says that this command does not apply, and why."""

    def as_json(self) -> dict[str, Any]:
        return {"changes": [asdict(c) for c in self.changes], "notes": list(self.notes)}
