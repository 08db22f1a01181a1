"""Recomputing a hash chain from its stored fields, in Python, independently of the database.

The canonical text an entry's SHA-256 covers (ADR 0007), fields joined by ``|``::

    hex(prev_hash) | seq | tenant uuid | recorded_at as YYYY-MM-DDTHH:MM:SS.ffffffZ (UTC)
    | JSON string of actor | JSON string of action | JSON string of target, or null
    | JSON string of outcome | details as PostgreSQL prints the jsonb

Text fields are JSON-quoted, so a ``|`` inside them cannot shift a boundary. The first entry's
``prev_hash`` is 32 zero bytes. The recorded time and the details' text are read as
PostgreSQL formats them, so both sides hash the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

GENESIS = bytes(32)
#: The PostgreSQL to_char format of ``recorded_at`` in the canonical text (UTC).
TIME_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'


@dataclass(frozen=True)
class ChainEntry:
    tenant_id: uuid.UUID
    seq: int
    recorded_at: str
    actor: str
    action: str
    target: str | None
    outcome: str
    details_text: str
    prev_hash: bytes
    hash: bytes

    @classmethod
    def from_export(cls, line: Mapping[str, Any]) -> ChainEntry:
        """An entry from one line of ``GET /v1/audit/export``."""
        return cls(
            tenant_id=uuid.UUID(str(line["tenant_id"])),
            seq=int(line["seq"]),
            recorded_at=str(line["recorded_at"]),
            actor=str(line["actor"]),
            action=str(line["action"]),
            target=None if line.get("target") is None else str(line["target"]),
            outcome=str(line["outcome"]),
            details_text=str(line["details_text"]),
            prev_hash=bytes.fromhex(str(line["prev_hash"])),
            hash=bytes.fromhex(str(line["hash"])),
        )


def _quoted(value: str | None) -> str:
    return "null" if value is None else json.dumps(value, ensure_ascii=False)


def canonical_text(entry: ChainEntry) -> str:
    return "|".join(
        (
            entry.prev_hash.hex(),
            str(entry.seq),
            str(entry.tenant_id),
            entry.recorded_at,
            _quoted(entry.actor),
            _quoted(entry.action),
            _quoted(entry.target),
            _quoted(entry.outcome),
            entry.details_text,
        )
    )


def entry_hash(entry: ChainEntry) -> bytes:
    return hashlib.sha256(canonical_text(entry).encode("utf-8")).digest()


@dataclass(frozen=True)
class Finding:
    """One thing wrong with a chain: what, where, and what it means."""

    tenant_id: uuid.UUID
    seq: int | None
    kind: str
    detail: str


@dataclass(frozen=True)
class Head:
    last_seq: int
    last_hash: bytes


@dataclass(frozen=True)
class Anchor:
    """An entry the chain must still hold, unchanged: from a signed head or an earlier export.

    A chain rewritten consistently by someone who can write the database past its triggers
    (its owner, the superuser) verifies on its own; kept outside the platform, an anchor
    tells such a chain from the one that was signed or exported.
    """

    tenant_id: uuid.UUID
    seq: int
    hash: bytes
    source: str


@dataclass
class ChainChecker:
    """Feed a chain's entries in ``seq`` order; collects every inconsistency.

    ``partial`` checks an excerpt (an export with ``since``/``until``): the first entry is
    trusted as the starting point instead of the chain's genesis. ``head`` is the chain's
    head row when checking the database (``expect_head``): without one, newest entries
    deleted from an offline file cannot be told apart from an older export. ``anchors`` are
    the chain's entries as signed or exported earlier, by ``seq``: each must still be there
    with the same hash.
    """

    tenant_id: uuid.UUID
    head: Head | None = None
    partial: bool = False
    expect_head: bool = True
    anchors: Mapping[int, Sequence[Anchor]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    entries: int = 0
    _expected_seq: int = 1
    _prev: bytes = GENESIS
    _anchored: set[int] = field(default_factory=set)

    def _find(self, seq: int | None, kind: str, detail: str) -> None:
        self.findings.append(Finding(self.tenant_id, seq, kind, detail))

    def feed(self, entry: ChainEntry) -> None:
        if self.partial and self.entries == 0:
            self._expected_seq, self._prev = entry.seq, entry.prev_hash
        self.entries += 1
        if entry.seq > self._expected_seq:
            missing = f"{self._expected_seq}" if entry.seq == self._expected_seq + 1 else None
            span = missing or f"{self._expected_seq}..{entry.seq - 1}"
            self._find(entry.seq, "missing", f"les entrées {span} manquent avant l'entrée {entry.seq} (supprimées)")
        elif entry.seq < self._expected_seq:
            self._find(
                entry.seq, "duplicate", f"l'entrée {entry.seq} réapparaît après l'entrée {self._expected_seq - 1}"
            )
        if entry_hash(entry) != entry.hash:
            self._find(
                entry.seq,
                "altered",
                f"les champs enregistrés de l'entrée {entry.seq} ne correspondent pas à son empreinte (modifiée)",
            )
        if entry.prev_hash != self._prev:
            self._find(
                entry.seq,
                "broken_link",
                (
                    f"l'entrée {entry.seq} n'est pas chaînée à l'entrée "
                    "précédente (suppression, insertion ou réordonnancement)"
                ),
            )
        for anchor in self.anchors.get(entry.seq, ()):
            self._anchored.add(entry.seq)
            if anchor.hash != entry.hash:
                self._find(
                    entry.seq,
                    "anchor_mismatch",
                    f"l'entrée {entry.seq} diffère de {anchor.source} : la chaîne a été réécrite à partir de là",
                )
        self._expected_seq = max(self._expected_seq, entry.seq + 1)
        self._prev = entry.hash

    def _unreached_anchors(self) -> None:
        last_seq = self._expected_seq - 1
        for seq in sorted(set(self.anchors) - self._anchored):
            source = self.anchors[seq][0].source
            why = (
                f"la chaîne s'arrête maintenant à l'entrée {last_seq} : ses entrées les plus récentes ont été coupées "
                "et sa tête ramenée en arrière"
                if seq > last_seq
                else "elle a été supprimée"
            )
            self._find(seq, "anchor_missing", f"l'entrée {seq} de {source} n'est plus dans la chaîne : {why}")

    def finish(self) -> list[Finding]:
        self._unreached_anchors()
        if self.head is None:
            if self.entries and self.expect_head and not self.partial:
                self._find(
                    None, "no_head", "la chaîne a des entrées mais pas de tête : sa ligne de tête a été supprimée"
                )
            return self.findings
        last_seq = self._expected_seq - 1
        if last_seq < self.head.last_seq:
            self._find(
                last_seq + 1,
                "missing",
                f"la chaîne s'arrête à l'entrée {last_seq} mais sa tête indique {self.head.last_seq} "
                "(entrées les plus récentes supprimées)",
            )
        elif last_seq > self.head.last_seq:
            self._find(
                self.head.last_seq + 1,
                "beyond_head",
                f"des entrées existent après celle de la tête ({self.head.last_seq})",
            )
        elif self._prev != self.head.last_hash:
            self._find(
                last_seq,
                "head_mismatch",
                "l'empreinte de la dernière entrée diffère de celle de la tête de la chaîne",
            )
        return self.findings


def check_entries(entries: Iterable[ChainEntry], *, partial: bool = False) -> tuple[int, list[Finding]]:
    """Check entries of one or several chains (e.g. an export file) offline: count and findings."""
    checkers: dict[uuid.UUID, ChainChecker] = {}
    for entry in entries:
        checker = checkers.setdefault(
            entry.tenant_id, ChainChecker(entry.tenant_id, partial=partial, expect_head=False)
        )
        checker.feed(entry)
    findings = [f for checker in checkers.values() for f in checker.finish()]
    return sum(c.entries for c in checkers.values()), findings
