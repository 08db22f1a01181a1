# ruff: noqa: S608  (every name in this DDL is a constant of this module)
"""A commune comes back from its offboarding bundle: the ``importing`` status and the audit restore.

``tenancy.restore_audit_entries`` puts a tenant's exported hash chain back verbatim, so the
commune keeps its history (and its proofs) wherever it is imported. It is the only way to
write a chain other than ``append_audit``, and it cannot forge one: each entry must hash to
its own ``hash`` over the canonical text, link to the previous entry, and follow the chain
already on the platform (entries already there must be the same, byte for byte). Only the
tenancy application role may call it, in the tenant's own context.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

from socle_core.provisioning import ServiceRoles

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

SCHEMA = "tenancy"
ROLES = ServiceRoles.for_service(SCHEMA)
PLATFORM_TENANT = "00000000-0000-0000-0000-000000000000"
_DEFINER = "SECURITY DEFINER SET search_path = pg_catalog, pg_temp"
_STATUSES = "'invited', 'active', 'suspended', 'offboarding', 'deleted'"
_SIGNATURE = "restore_audit_entries(uuid, jsonb)"


def upgrade() -> None:
    op.execute(f"ALTER TABLE {SCHEMA}.tenants DROP CONSTRAINT ck_tenants_status")
    op.execute(
        f"ALTER TABLE {SCHEMA}.tenants ADD CONSTRAINT ck_tenants_status CHECK (status IN ({_STATUSES}, 'importing'))"
    )
    op.execute(
        f"""
        CREATE FUNCTION {SCHEMA}.{_SIGNATURE.replace("uuid, jsonb", "tenant uuid, entries jsonb")} RETURNS bigint
        LANGUAGE plpgsql {_DEFINER} AS $$
        DECLARE
          zero bytea := decode(repeat('00', 32), 'hex');
          head_seq bigint := 0;
          head_hash bytea := decode(repeat('00', 32), 'hex');
          expected_seq bigint := 1;
          expected_prev bytea := decode(repeat('00', 32), 'hex');
          entry jsonb;
          entry_seq bigint;
          stamp timestamptz;
          prev bytea;
          digest bytea;
          kept bytea;
          added bigint := 0;
        BEGIN
          IF tenant IS NULL OR tenant = '{PLATFORM_TENANT}'::uuid THEN
            RAISE EXCEPTION 'audit restore: a tenant''s chain only' USING ERRCODE = 'invalid_parameter_value';
          END IF;
          IF current_setting('app.tenant_id', true) IS DISTINCT FROM tenant::text THEN
            RAISE EXCEPTION 'audit restore: only in the tenant''s own context (app.tenant_id)'
              USING ERRCODE = 'insufficient_privilege';
          END IF;
          IF jsonb_typeof(entries) <> 'array' THEN
            RAISE EXCEPTION 'audit restore: entries must be a JSON array' USING ERRCODE = 'invalid_parameter_value';
          END IF;
          PERFORM pg_advisory_xact_lock(hashtextextended('socle.audit:' || tenant::text, 0));
          SELECT h.last_seq, h.last_hash INTO head_seq, head_hash
            FROM {SCHEMA}.audit_heads h WHERE h.chain_id = tenant FOR UPDATE;
          IF NOT FOUND THEN
            head_seq := 0;
            head_hash := zero;
          END IF;
          FOR entry IN SELECT value FROM jsonb_array_elements(entries) ORDER BY (value->>'seq')::bigint LOOP
            entry_seq := (entry->>'seq')::bigint;
            stamp := (entry->>'recorded_at')::timestamptz;
            prev := decode(substr(entry->>'prev_hash', 3), 'hex');
            IF (entry->>'tenant_id')::uuid <> tenant THEN
              RAISE EXCEPTION 'audit restore: entry % belongs to another chain', entry_seq USING ERRCODE = 'data_exception';
            END IF;
            IF entry_seq <> expected_seq OR prev <> expected_prev THEN
              RAISE EXCEPTION 'audit restore: the chain is broken at entry % (missing or reordered entries)', entry_seq
                USING ERRCODE = 'data_exception';
            END IF;
            digest := sha256(convert_to({SCHEMA}.audit_canonical(
              prev, entry_seq, tenant, stamp, entry->>'actor', entry->>'action', entry->>'target', entry->>'outcome',
              entry->'details'), 'UTF8'));
            IF digest <> decode(substr(entry->>'hash', 3), 'hex') THEN
              RAISE EXCEPTION 'audit restore: entry % does not match its hash (edited)', entry_seq
                USING ERRCODE = 'data_exception';
            END IF;
            IF entry_seq <= head_seq THEN
              SELECT e.hash INTO kept FROM {SCHEMA}.audit_entries e WHERE e.tenant_id = tenant AND e.seq = entry_seq;
              IF kept IS DISTINCT FROM digest THEN
                RAISE EXCEPTION 'audit restore: entry % differs from the one this platform keeps', entry_seq
                  USING ERRCODE = 'data_exception';
              END IF;
            ELSE
              PERFORM {SCHEMA}.ensure_audit_partition(tenant, stamp);
              INSERT INTO {SCHEMA}.audit_entries
                (tenant_id, seq, recorded_at, actor, action, target, outcome, details, prev_hash, hash)
                VALUES (tenant, entry_seq, stamp, entry->>'actor', entry->>'action', entry->>'target', entry->>'outcome',
                        entry->'details', prev, digest);
              IF entry_seq = 1 THEN
                INSERT INTO {SCHEMA}.audit_heads (chain_id, last_seq, last_hash, updated_at)
                  VALUES (tenant, entry_seq, digest, stamp);
              ELSE
                UPDATE {SCHEMA}.audit_heads SET last_seq = entry_seq, last_hash = digest, updated_at = stamp
                  WHERE chain_id = tenant;
              END IF;
              head_seq := entry_seq;
              added := added + 1;
            END IF;
            expected_seq := entry_seq + 1;
            expected_prev := digest;
          END LOOP;
          RETURN added;
        END $$
        """
    )
    op.execute(f"REVOKE ALL ON FUNCTION {SCHEMA}.{_SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SCHEMA}.{_SIGNATURE} TO {ROLES.app}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {SCHEMA}.{_SIGNATURE}")
    op.execute(f"ALTER TABLE {SCHEMA}.tenants DROP CONSTRAINT ck_tenants_status")
    op.execute(f"ALTER TABLE {SCHEMA}.tenants ADD CONSTRAINT ck_tenants_status CHECK (status IN ({_STATUSES}))")
