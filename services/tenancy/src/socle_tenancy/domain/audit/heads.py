"""Signed chain heads: published outside the database, and read back as anchors to verify against.

Tamper evidence inside the database stops at whoever can write it past its triggers (the
schema owner, the superuser): they can cut a chain's tail and roll its head back, or
recompute every hash after an edit, and the chain still verifies. So every chain's head
(last ``seq`` and hash) is signed (Ed25519, ``signing``) and published where the database's
administrators cannot rewrite it:

- periodically, to a directory of append-only JSON Lines files, one per month
  (``audit-heads-YYYY-MM.jsonl``, ``audit_heads_dir``): a volume of its own, WORM object
  storage, or files shipped on to the auditor;
- on demand, to the auditor (``GET /v1/audit/heads``), who keeps what they fetched.

``verify --against`` (and ``POST /v1/audit/verify`` with ``against``) then holds the
database to those heads, or to an earlier export: an entry signed or exported before must
still be there with the same hash.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle_core.auth import system_tenant
from socle_core.db import tenant_session
from socle_tenancy.domain.audit.chain import Anchor
from socle_tenancy.domain.audit.services import chain_head, known_chains
from socle_tenancy.domain.audit.signing import RECORD_TYPE, HeadSigner, HeadVerifier, SignatureError

log = structlog.get_logger("socle.tenancy.audit.heads")

#: One publisher at a time across the service's replicas (they share the directory).
_PUBLISHING_LOCK = text("SELECT pg_try_advisory_xact_lock(hashtextextended('socle.audit.heads', 0))")


@dataclass(frozen=True)
class ChainHead:
    chain_id: uuid.UUID
    seq: int
    hash: bytes
    updated_at: dt.datetime


async def read_heads(maker: async_sessionmaker[AsyncSession]) -> list[ChainHead]:
    """The head of every chain that has one, each read in its chain's context."""
    heads: list[ChainHead] = []
    for chain in sorted(await known_chains(maker)):
        async with tenant_session(maker, system_tenant(chain, reason="sign the audit chain's head")) as session:
            head = await chain_head(session, chain)
        if head is not None:
            heads.append(ChainHead(chain, int(head.last_seq), bytes(head.last_hash), head.updated_at))
    return heads


def sign_heads(signer: HeadSigner, heads: Iterable[ChainHead], signed_at: dt.datetime) -> list[dict[str, Any]]:
    return [signer.sign(h.chain_id, h.seq, h.hash, h.updated_at, signed_at) for h in heads]


def heads_file(directory: Path, moment: dt.datetime) -> Path:
    return directory / f"audit-heads-{moment.astimezone(dt.UTC):%Y-%m}.jsonl"


def append_records(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    """Append whole lines, opened O_APPEND (never rewritten, never truncated), and flush them to disk."""
    data = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class HeadPublisher:
    """Publishes the heads that moved since this process last published them (all of them at first)."""

    def __init__(self, maker: async_sessionmaker[AsyncSession], signer: HeadSigner, directory: Path) -> None:
        self.maker = maker
        self.signer = signer
        self.directory = directory
        self._published: dict[uuid.UUID, tuple[int, bytes]] = {}

    async def run(self) -> int:
        """Sign and append the moved heads; the number of lines written (0 while another replica publishes)."""
        async with self.maker() as session, session.begin():
            if not await session.scalar(_PUBLISHING_LOCK):
                return 0
            moved = [h for h in await read_heads(self.maker) if self._published.get(h.chain_id) != (h.seq, h.hash)]
            if not moved:
                return 0
            now = dt.datetime.now(dt.UTC)
            path = heads_file(self.directory, now)
            await asyncio.to_thread(append_records, path, sign_heads(self.signer, moved, now))
        self._published.update({h.chain_id: (h.seq, h.hash) for h in moved})
        log.info("audit_heads_published", heads=len(moved), file=str(path), key_id=self.signer.key_id)
        return len(moved)


class AnchorError(ValueError):
    """A line to verify against that is neither a valid signed head nor an export line."""

    def __init__(self, index: int, detail: str) -> None:
        super().__init__(f"ligne {index + 1} : {detail}")
        self.index = index
        self.detail = detail


def parse_anchor_document(content: str) -> list[dict[str, Any]]:
    """The records of a file to verify against: JSON Lines (published heads, an export), or ``GET /v1/audit/heads``."""
    try:
        document = json.loads(content)
    except json.JSONDecodeError:
        document = None  # JSON Lines of several records
    if isinstance(document, dict):
        heads = document.get("heads")
        return [dict(h) for h in heads if isinstance(h, dict)] if isinstance(heads, list) else [document]
    records: list[dict[str, Any]] = []
    for number, line in enumerate(content.splitlines()):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AnchorError(number, f"pas du JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise AnchorError(number, "pas un objet JSON")
        records.append(record)
    return records


def anchors_of(records: Sequence[Mapping[str, Any]], verifier: HeadVerifier | None) -> list[Anchor]:
    """Anchors from signed heads (their signature checked) and export lines (the auditor's own copy)."""
    anchors: list[Anchor] = []
    for index, record in enumerate(records):
        try:
            if record.get("type") == RECORD_TYPE:
                if verifier is None:
                    raise SignatureError("les têtes signées ne se vérifient qu'avec la clé publique de signature")
                verifier.check(record)
                chain, source = record["chain_id"], f"la tête signée le {record['signed_at']}"
            elif "details_text" in record:
                chain, source = record["tenant_id"], "l'export antérieur"
            else:
                raise AnchorError(
                    index, "ni une tête signée (type socle.audit.head) ni une ligne d'export du journal d'audit"
                )
            digest = bytes.fromhex(str(record["hash"]))
            anchors.append(Anchor(uuid.UUID(str(chain)), int(record["seq"]), digest, source))
        except AnchorError:
            raise
        except SignatureError as exc:
            raise AnchorError(index, str(exc)) from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise AnchorError(index, f"mal formé ({exc.__class__.__name__} : {exc})") from exc
    return anchors
