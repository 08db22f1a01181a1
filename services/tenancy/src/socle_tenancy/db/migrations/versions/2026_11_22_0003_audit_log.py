# ruff: noqa: S608  (every name and value in this DDL is a constant of this module)
"""The tamper-evident audit log: one hash chain per tenant, partitioned by tenant and month.

``audit_entries`` is append-only. Nobody writes it directly: ``tenancy.append_audit`` (SECURITY
DEFINER, owned by the schema owner, EXECUTE granted to the group ``socle_audit_writer`` that
every service's application role joins) takes a per-tenant transaction advisory lock, creates
the tenant's partitions on demand, chains the entry to the tenant's previous one and inserts
it in the caller's transaction. ``audit_heads`` keeps each chain's last sequence number and
hash, so removing the newest entries is detectable too; it is chain metadata (no tenant data,
no ``tenant_id``), readable whole by the verifier. See ADR 0007 for the canonical text the
hash covers.

Partitions do not inherit row-level security, and the schema's default privileges would
give the application role DML on every new partition: each one is protected as it is
created (RLS enabled, forced, tenant policy; privileges revoked; TRUNCATE refused). Triggers
refuse any change but the function's own appends, whatever privileges a role holds.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

from socle_core.migrations import CURRENT_TENANT_SQL, TENANT_POLICY, enable_tenant_isolation
from socle_core.provisioning import AUDIT_WRITER, ServiceRoles

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

SCHEMA = "tenancy"
ROLES = ServiceRoles.for_service(SCHEMA)
#: The platform's own chain (events that concern no tenant): the nil UUID.
PLATFORM_TENANT = "00000000-0000-0000-0000-000000000000"
#: UTC, microseconds, e.g. 2026-11-22T09:05:03.123456Z (the form the hash covers).
TIME_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
_DEFINER = "SECURITY DEFINER SET search_path = pg_catalog, pg_temp"
#: The tenant context in a dynamic statement's string literal.
_current = CURRENT_TENANT_SQL.replace("'", "''")


def upgrade() -> None:
    op.execute(
        f"""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{AUDIT_WRITER}') THEN
            RAISE EXCEPTION 'role {AUDIT_WRITER} is missing: provision the database again '
              '(socle_core.provisioning.provision_service) before running this migration';
          END IF;
        END $$
        """
    )
    op.execute(
        f"""
        CREATE TABLE {SCHEMA}.audit_entries (
            tenant_id uuid NOT NULL,
            seq bigint NOT NULL,
            recorded_at timestamptz NOT NULL,
            actor text NOT NULL,
            action text NOT NULL,
            target text,
            outcome text NOT NULL,
            details jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            prev_hash bytea NOT NULL,
            hash bytea NOT NULL,
            CONSTRAINT pk_audit_entries PRIMARY KEY (tenant_id, recorded_at, seq),
            CONSTRAINT ck_audit_entries_outcome CHECK (outcome IN ('success', 'refused', 'failure')),
            CONSTRAINT ck_audit_entries_seq CHECK (seq >= 1),
            CONSTRAINT ck_audit_entries_hashes CHECK (octet_length(hash) = 32 AND octet_length(prev_hash) = 32)
        ) PARTITION BY LIST (tenant_id)
        """
    )
    op.execute(f"CREATE INDEX ix_audit_entries_tenant_id_seq ON {SCHEMA}.audit_entries (tenant_id, seq)")
    enable_tenant_isolation("audit_entries", SCHEMA)

    # The chains' heads: metadata (a count and a hash per chain), not tenant data; the
    # verifier reads them all, so no tenant_id column and no RLS, like the tenant registry.
    op.execute(
        f"""
        CREATE TABLE {SCHEMA}.audit_heads (
            chain_id uuid NOT NULL,
            last_seq bigint NOT NULL,
            last_hash bytea NOT NULL,
            updated_at timestamptz NOT NULL,
            CONSTRAINT pk_audit_heads PRIMARY KEY (chain_id),
            CONSTRAINT ck_audit_heads_last_seq CHECK (last_seq >= 1)
        )
        """
    )
    for table in ("audit_entries", "audit_heads"):
        op.execute(f"REVOKE ALL ON {SCHEMA}.{table} FROM PUBLIC")
        op.execute(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {SCHEMA}.{table} FROM {ROLES.app}")
        op.execute(f"GRANT SELECT ON {SCHEMA}.{table} TO {ROLES.app}")

    # Privileges are not enough: provisioning re-grants DML on every table of the schema to
    # the application role each time it runs. The triggers refuse every change but the
    # definer function's appends (it runs as the owner), whoever holds which privilege.
    op.execute(
        f"""
        CREATE FUNCTION {SCHEMA}.audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF TG_OP = 'INSERT' AND current_user = '{ROLES.owner}' THEN
            RETURN NEW;
          END IF;
          IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'audit_heads' AND current_user = '{ROLES.owner}' THEN
            IF NEW.chain_id = OLD.chain_id AND NEW.last_seq = OLD.last_seq + 1 THEN
              RETURN NEW;  -- a head moves one entry forward, nothing else
            END IF;
          END IF;
          RAISE EXCEPTION 'the audit log is append-only and written by {SCHEMA}.append_audit: % on %.% is refused',
            TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    for table in ("audit_entries", "audit_heads"):
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE INSERT OR UPDATE OR DELETE ON {SCHEMA}.{table} "
            f"FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.audit_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {SCHEMA}.{table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.audit_append_only()"
        )

    op.execute(
        f"""
        CREATE FUNCTION {SCHEMA}.audit_canonical(
            prev_hash bytea, seq bigint, tenant uuid, recorded_at timestamptz,
            actor text, action text, target text, outcome text, details jsonb
        ) RETURNS text LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
          SELECT concat_ws('|',
            encode($1, 'hex'), $2::text, $3::text, to_char($4 AT TIME ZONE 'UTC', '{TIME_FORMAT}'),
            to_jsonb($5)::text, to_jsonb($6)::text, coalesce(to_jsonb($7)::text, 'null'), to_jsonb($8)::text,
            $9::text)
        $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION {SCHEMA}.audit_protect_partition(partition text) RETURNS void LANGUAGE plpgsql
        {_DEFINER} AS $$
        BEGIN
          EXECUTE format('ALTER TABLE {SCHEMA}.%I ENABLE ROW LEVEL SECURITY', partition);
          EXECUTE format('ALTER TABLE {SCHEMA}.%I FORCE ROW LEVEL SECURITY', partition);
          EXECUTE format('CREATE POLICY {TENANT_POLICY} ON {SCHEMA}.%I FOR ALL USING (tenant_id = {_current}) '
                         'WITH CHECK (tenant_id = {_current})', partition);
          EXECUTE format('REVOKE ALL ON {SCHEMA}.%I FROM PUBLIC, {ROLES.app}', partition);
          EXECUTE format('CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON {SCHEMA}.%I '
                         'FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.audit_append_only()', partition);
        END $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION {SCHEMA}.ensure_audit_partition(tenant uuid, moment timestamptz) RETURNS void
        LANGUAGE plpgsql {_DEFINER} AS $$
        DECLARE
          tenant_partition text := 'audit_entries_' || replace(tenant::text, '-', '');
          month_start timestamptz := date_trunc('month', moment AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
          month_partition text;
        BEGIN
          IF to_regclass(format('{SCHEMA}.%I', tenant_partition)) IS NULL THEN
            EXECUTE format('CREATE TABLE {SCHEMA}.%I PARTITION OF {SCHEMA}.audit_entries FOR VALUES IN (%L) '
                           'PARTITION BY RANGE (recorded_at)', tenant_partition, tenant);
            PERFORM {SCHEMA}.audit_protect_partition(tenant_partition);
          END IF;
          -- This month and the next: a month's first entry rarely has to create a table.
          FOR step IN 0..1 LOOP
            month_partition := tenant_partition || '_'
              || to_char((month_start + make_interval(months => step)) AT TIME ZONE 'UTC', 'YYYYMM');
            IF to_regclass(format('{SCHEMA}.%I', month_partition)) IS NULL THEN
              EXECUTE format('CREATE TABLE {SCHEMA}.%I PARTITION OF {SCHEMA}.%I FOR VALUES FROM (%L) TO (%L)',
                             month_partition, tenant_partition,
                             month_start + make_interval(months => step),
                             month_start + make_interval(months => step + 1));
              PERFORM {SCHEMA}.audit_protect_partition(month_partition);
            END IF;
          END LOOP;
        END $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION {SCHEMA}.append_audit(
            tenant uuid, actor text, action text, target text, outcome text, details jsonb
        ) RETURNS bigint LANGUAGE plpgsql {_DEFINER} AS $$
        DECLARE
          caller_tenant text := current_setting('app.tenant_id', true);
          stamp timestamptz;
          next_seq bigint := 1;
          prev bytea := decode(repeat('00', 32), 'hex');
          body jsonb := coalesce(details, '{{}}'::jsonb);
          digest bytea;
        BEGIN
          IF tenant IS NULL THEN
            RAISE EXCEPTION 'audit: the tenant is required (the platform chain is {PLATFORM_TENANT})'
              USING ERRCODE = 'null_value_not_allowed';
          END IF;
          IF coalesce(actor, '') = '' OR coalesce(action, '') = '' THEN
            RAISE EXCEPTION 'audit: actor and action are required' USING ERRCODE = 'null_value_not_allowed';
          END IF;
          IF jsonb_typeof(body) <> 'object' THEN
            RAISE EXCEPTION 'audit: details must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
          END IF;
          PERFORM pg_advisory_xact_lock(hashtextextended('socle.audit:' || tenant::text, 0));
          stamp := clock_timestamp();
          PERFORM {SCHEMA}.ensure_audit_partition(tenant, stamp);
          -- The entries are tenant-owned (RLS, forced on the owner too): append in the chain's
          -- tenant context, and give the caller its own context back before returning.
          PERFORM set_config('app.tenant_id', tenant::text, true);
          SELECT h.last_seq + 1, h.last_hash INTO next_seq, prev
            FROM {SCHEMA}.audit_heads h WHERE h.chain_id = tenant FOR UPDATE;
          IF NOT FOUND THEN
            next_seq := 1;
            prev := decode(repeat('00', 32), 'hex');
          END IF;
          digest := sha256(convert_to(
            {SCHEMA}.audit_canonical(prev, next_seq, tenant, stamp, actor, action, target, outcome, body), 'UTF8'));
          INSERT INTO {SCHEMA}.audit_entries
            (tenant_id, seq, recorded_at, actor, action, target, outcome, details, prev_hash, hash)
            VALUES (tenant, next_seq, stamp, actor, action, target, outcome, body, prev, digest);
          IF next_seq = 1 THEN
            INSERT INTO {SCHEMA}.audit_heads (chain_id, last_seq, last_hash, updated_at)
              VALUES (tenant, next_seq, digest, stamp);
          ELSE
            UPDATE {SCHEMA}.audit_heads SET last_seq = next_seq, last_hash = digest, updated_at = stamp
              WHERE chain_id = tenant;
          END IF;
          PERFORM set_config('app.tenant_id', coalesce(caller_tenant, ''), true);
          RETURN next_seq;
        END $$
        """
    )
    for signature in (
        "audit_append_only()",
        "audit_canonical(bytea, bigint, uuid, timestamptz, text, text, text, text, jsonb)",
        "audit_protect_partition(text)",
        "ensure_audit_partition(uuid, timestamptz)",
        "append_audit(uuid, text, text, text, text, jsonb)",
    ):
        op.execute(f"REVOKE ALL ON FUNCTION {SCHEMA}.{signature} FROM PUBLIC")
    op.execute(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {AUDIT_WRITER}")
    op.execute(
        f"GRANT EXECUTE ON FUNCTION {SCHEMA}.append_audit(uuid, text, text, text, text, jsonb) TO {AUDIT_WRITER}"
    )


def downgrade() -> None:
    op.execute(f"REVOKE USAGE ON SCHEMA {SCHEMA} FROM {AUDIT_WRITER}")
    op.execute(f"DROP FUNCTION {SCHEMA}.append_audit(uuid, text, text, text, text, jsonb)")
    op.execute(f"DROP FUNCTION {SCHEMA}.ensure_audit_partition(uuid, timestamptz)")
    op.execute(f"DROP FUNCTION {SCHEMA}.audit_protect_partition(text)")
    op.execute(
        f"DROP FUNCTION {SCHEMA}.audit_canonical(bytea, bigint, uuid, timestamptz, text, text, text, text, jsonb)"
    )
    op.execute(f"DROP TABLE {SCHEMA}.audit_heads")
    op.execute(f"DROP TABLE {SCHEMA}.audit_entries")
    op.execute(f"DROP FUNCTION {SCHEMA}.audit_append_only()")
