"""Verify the audit log from the command line; exits non-zero on any finding.

    python -m socle_tenancy.audit verify [--tenant UUID ...] [--database-url URL]
    python -m socle_tenancy.audit verify-export FILE.jsonl [--partial]

``verify`` connects as the tenancy application role (``SOCLE_TENANCY_DATABASE_URL`` by
default, the running ``make up`` stack's in development when unset) and recomputes every
chain from its stored fields. ``verify-export`` checks a file
from ``GET /v1/audit/export`` offline, with no database; ``--partial`` for an export cut by
``since``/``until`` (its first entry is then trusted as the starting point).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from socle_core.db import create_session_maker
from socle_core.local_stack import LocalStackError, describe_settings_error, fill_from_local_stack
from socle_core.logging import configure_logging
from socle_tenancy.domain.audit.chain import ChainEntry, Finding, check_entries


def _print_findings(findings: Sequence[Finding]) -> None:
    for finding in findings:
        where = f"entry {finding.seq}" if finding.seq is not None else "chain"
        print(f"TAMPERED chain {finding.tenant_id} {where}: {finding.kind}: {finding.detail}")


async def _verify(url: str, tenants: list[uuid.UUID] | None) -> int:
    from sqlalchemy.ext.asyncio import create_async_engine

    from socle_tenancy.domain.audit.services import verify

    engine = create_async_engine(url, pool_size=1, max_overflow=0)
    try:
        verdict = await verify(create_session_maker(engine), tenants)
    finally:
        await engine.dispose()
    _print_findings(verdict.findings)
    state = "intact" if verdict.ok else "TAMPERED"
    print(f"{state}: {verdict.chains} chain(s), {verdict.entries} entr(y/ies), {len(verdict.findings)} finding(s)")
    return 0 if verdict.ok else 1


def _verify_export(path: Path, partial: bool) -> int:
    with path.open(encoding="utf-8") as lines:
        entries = [ChainEntry.from_export(json.loads(line)) for line in lines if line.strip()]
    count, findings = check_entries(entries, partial=partial)
    _print_findings(findings)
    print(f"{'intact' if not findings else 'TAMPERED'}: {count} entr(y/ies), {len(findings)} finding(s)")
    return 0 if not findings else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m socle_tenancy.audit", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="recompute the chains in the database")
    verify.add_argument("--tenant", type=uuid.UUID, action="append", help="only this chain (repeatable)")
    verify.add_argument("--database-url", help="postgresql+asyncpg:// URL (default: SOCLE_TENANCY_DATABASE_URL)")
    export = commands.add_parser("verify-export", help="check an export file offline")
    export.add_argument("file", type=Path)
    export.add_argument("--partial", action="store_true", help="the export was cut by since/until")
    args = parser.parse_args(argv)
    configure_logging("tenancy", "WARNING", json=True)  # the findings are the output, not the log
    if args.command == "verify-export":
        return _verify_export(args.file, args.partial)
    url = args.database_url or _settings_database_url()
    if url is None:
        return 2
    return asyncio.run(_verify(url, args.tenant))


def _settings_database_url() -> str | None:
    """The tenancy settings' database URL; None (and what to set, on stderr) when they do not load."""
    from socle_tenancy.config import TenancySettings

    try:
        fill_from_local_stack(["SOCLE_TENANCY_DATABASE_URL", "SOCLE_TENANCY_OIDC_ISSUER"])
        return TenancySettings().database_url.get_secret_value()  # type: ignore[call-arg]
    except LocalStackError as exc:
        print(f"erreur : {exc}", file=sys.stderr)
    except ValidationError as exc:
        print(f"erreur : {describe_settings_error(exc, 'SOCLE_TENANCY_')}", file=sys.stderr)
    return None


if __name__ == "__main__":
    sys.exit(main())
