"""Verify the audit log from the command line; exits non-zero on any finding.

    python -m socle_tenancy.audit verify [--tenant UUID ...] [--against FILE ...] [--public-key B64 ...]
                                         [--database-url URL]
    python -m socle_tenancy.audit verify-export FILE.jsonl [--partial]
    python -m socle_tenancy.audit publish-heads [--database-url URL]

``verify`` connects as the tenancy application role (``SOCLE_TENANCY_DATABASE_URL`` by
default, the running ``make up`` stack's in development when unset) and recomputes every
chain from its stored fields. ``verify-export`` checks a file; with ``--against``, every entry
of the files (signed heads: the published ``audit-heads-*.jsonl`` or a saved
``GET /v1/audit/heads``; or an earlier export) must still be in the database unchanged,
which catches a chain rewritten consistently by the database's owner or superuser. Signed
heads are checked with ``--public-key`` (as ``GET /v1/audit/heads`` shows it), or with the
key derived from ``SOCLE_TENANCY_AUDIT_HEADS_SIGNING_KEY``. ``verify-export`` checks a file
from ``GET /v1/audit/export`` offline, with no database; ``--partial`` for an export cut by
``since``/``until`` (its first entry is then trusted as the starting point).
``publish-heads`` signs every chain's head and appends it to ``SOCLE_TENANCY_AUDIT_HEADS_DIR``
once (e.g. from a Kubernetes CronJob).
Exit codes: 0 intact (or published), 1 tampered, 2 unusable input or settings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from pydantic import SecretStr, ValidationError

from socle_core.db import create_session_maker
from socle_core.local_stack import LocalStackError, describe_settings_error, fill_from_local_stack
from socle_core.logging import configure_logging
from socle_tenancy.domain.audit.chain import Anchor, ChainEntry, Finding, check_entries
from socle_tenancy.domain.audit.heads import AnchorError, anchors_of, parse_anchor_document
from socle_tenancy.domain.audit.signing import SETTING, HeadSigner, HeadVerifier, SignatureError, public_key_of


def _print_findings(findings: Sequence[Finding]) -> None:
    for finding in findings:
        where = f"entry {finding.seq}" if finding.seq is not None else "chain"
        print(f"TAMPERED chain {finding.tenant_id} {where}: {finding.kind}: {finding.detail}")


def _verifier(public_keys: list[str] | None) -> HeadVerifier | None:
    keys = [public_key_of(k) for k in public_keys or []]
    secret = os.environ.get(SETTING)
    if secret:
        keys.append(HeadSigner(SecretStr(secret)).public_key)
    return HeadVerifier(keys) if keys else None


def _anchors(files: list[Path] | None, public_keys: list[str] | None) -> list[Anchor]:
    verifier = _verifier(public_keys)
    anchors: list[Anchor] = []
    for path in files or []:
        try:
            anchors += anchors_of(parse_anchor_document(path.read_text(encoding="utf-8")), verifier)
        except AnchorError as exc:
            raise AnchorError(exc.index, f"{path}: {exc.detail}") from exc
    return anchors


async def _verify(url: str, tenants: list[uuid.UUID] | None, anchors: list[Anchor]) -> int:
    from sqlalchemy.ext.asyncio import create_async_engine

    from socle_tenancy.domain.audit.services import verify

    if tenants:
        anchors = [a for a in anchors if a.tenant_id in tenants]
    engine = create_async_engine(url, pool_size=1, max_overflow=0)
    try:
        verdict = await verify(create_session_maker(engine), tenants, anchors)
    finally:
        await engine.dispose()
    _print_findings(verdict.findings)
    state = "intact" if verdict.ok else "TAMPERED"
    against = f", against {len(anchors)} anchor(s)" if anchors else ""
    print(
        f"{state}: {verdict.chains} chain(s), {verdict.entries} entr(y/ies){against}, "
        f"{len(verdict.findings)} finding(s)"
    )
    return 0 if verdict.ok else 1


async def _publish(url: str) -> int:
    from sqlalchemy.ext.asyncio import create_async_engine

    from socle_tenancy.config import TenancySettings
    from socle_tenancy.domain.audit.heads import HeadPublisher
    from socle_tenancy.domain.audit.signing import SigningKeyError, check_key

    settings = TenancySettings()  # type: ignore[call-arg]
    if settings.audit_heads_dir is None:
        print(
            "définissez SOCLE_TENANCY_AUDIT_HEADS_DIR : le répertoire où les têtes signées sont ajoutées",
            file=sys.stderr,
        )
        return 2
    try:
        signer = HeadSigner(check_key(settings.audit_heads_signing_key, settings.environment))
    except SigningKeyError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    engine = create_async_engine(url, pool_size=2, max_overflow=0)
    try:
        published = await HeadPublisher(create_session_maker(engine), signer, settings.audit_heads_dir).run()
    finally:
        await engine.dispose()
    print(f"published: {published} signed head(s) to {settings.audit_heads_dir} (key id {signer.key_id})")
    return 0


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
    verify.add_argument(
        "--against", type=Path, action="append", help="signed heads or an earlier export to hold the chains to"
    )
    verify.add_argument("--public-key", action="append", help="base64 Ed25519 key that signed the heads (repeatable)")
    export = commands.add_parser("verify-export", help="check an export file offline")
    export.add_argument("file", type=Path)
    export.add_argument("--partial", action="store_true", help="the export was cut by since/until")
    publish = commands.add_parser("publish-heads", help="sign every chain's head and append it to the heads directory")
    publish.add_argument("--database-url", help="postgresql+asyncpg:// URL (default: SOCLE_TENANCY_DATABASE_URL)")
    args = parser.parse_args(argv)
    configure_logging("tenancy", "WARNING", json=True)  # the findings are the output, not the log
    if args.command == "verify-export":
        return _verify_export(args.file, args.partial)
    url = args.database_url or _settings_database_url()
    if url is None:
        return 2
    if args.command == "publish-heads":
        return asyncio.run(_publish(url))
    try:
        anchors = _anchors(args.against, args.public_key)
    except (AnchorError, SignatureError, OSError) as exc:
        print(f"vérification impossible avec ce fichier : {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_verify(url, args.tenant, anchors))


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
