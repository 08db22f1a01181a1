# ruff: noqa: S608  (every name and value in this DDL is a constant of this module)
"""The audit log binds each write to the caller's tenant context; grants are audited by the database.

``append_audit`` (what the services' application roles execute) now appends only to the
chain of the tenant in context (``app.tenant_id``; no context is the platform chain), except
for the roles of ``CHAIN_WRITERS``, platform-wide jobs that legitimately write many chains.
It validates the entry (action ``area.verb``, a printable actor, bounded sizes) and refuses
to start a chain for a tenant the registry does not know; a chain already started outlives
its tenant's row (offboarding keeps it). The body moves to ``audit_append_entry``, executable
by the owner only, which the grants trigger also uses. ``audit_chains_known`` tells the
``CHAIN_WRITERS`` roles (only them) which of the chains they would write can be written, so
an event of a tenant the registry does not know goes to the platform chain.

``audit_heads`` gets row-level security on ``chain_id``: a role reads a chain's head in that
chain's context only, like its entries (the verifier opens each chain's context).

``data_grants`` is audited by an AFTER trigger: every insert, update or delete lands in the
grantor's and the grantee's chains (in the order of their ids), whoever wrote it, with the
database role that did. The revocation's reason becomes a column so the trigger can record it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

from socle_core.migrations import CURRENT_TENANT_SQL, TENANT_POLICY
from socle_core.provisioning import AUDIT_WRITER, ServiceRoles

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

SCHEMA = "tenancy"
ROLES = ServiceRoles.for_service(SCHEMA)
PLATFORM_TENANT = "00000000-0000-0000-0000-000000000000"
#: Roles that may append to any registered tenant's chain, whatever their context, and why.
CHAIN_WRITERS = {
    ServiceRoles.for_service("identity").app: "the Keycloak audit feed writes each event to the chain of every "
    "tenant it concerns, and organization changes requested by the platform go to the organization's chain",
}
#: The same rule as ``socle_core.audit.ACTION``.
ACTION_PATTERN = r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+$"
MAX_ACTION, MAX_ACTOR, MAX_TARGET, MAX_DETAILS = 100, 255, 500, 16384
_DEFINER = "SECURITY DEFINER SET search_path = pg_catalog, pg_temp"
_SIGNATURE = "(uuid, text, text, text, text, jsonb)"
_ARGS = "tenant uuid, actor text, action text, target text, outcome text, details jsonb"


def _entry_function() -> str:
    return f"""
    CREATE FUNCTION {SCHEMA}.audit_append_entry({_ARGS}) RETURNS bigint LANGUAGE plpgsql {_DEFINER} AS $$
    DECLARE
      caller_tenant text := current_setting('app.tenant_id', true);
      stamp timestamptz;
      next_seq bigint;
      prev bytea;
      body jsonb := coalesce(details, '{{}}'::jsonb);
      digest bytea;
    BEGIN
      IF tenant IS NULL THEN
        RAISE EXCEPTION 'audit: the tenant is required (the platform chain is {PLATFORM_TENANT})'
          USING ERRCODE = 'null_value_not_allowed';
      END IF;
      IF actor IS NULL OR btrim(actor) = '' OR char_length(actor) > {MAX_ACTOR} OR actor ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'audit: the actor must be 1 to {MAX_ACTOR} printable characters (a subject, a client id, '
          'system:<task>)' USING ERRCODE = 'invalid_parameter_value';
      END IF;
      IF action IS NULL OR char_length(action) > {MAX_ACTION} OR action !~ '{ACTION_PATTERN}' THEN
        RAISE EXCEPTION 'audit: action % must look like area.verb in lower case ({MAX_ACTION} characters at most)',
          quote_nullable(left(action, 120)) USING ERRCODE = 'invalid_parameter_value';
      END IF;
      IF target IS NOT NULL AND (char_length(target) > {MAX_TARGET} OR target ~ '[[:cntrl:]]') THEN
        RAISE EXCEPTION 'audit: the target must be at most {MAX_TARGET} printable characters'
          USING ERRCODE = 'invalid_parameter_value';
      END IF;
      IF outcome IS NULL OR outcome NOT IN ('success', 'refused', 'failure') THEN
        RAISE EXCEPTION 'audit: the outcome must be success, refused or failure' USING ERRCODE = 'invalid_parameter_value';
      END IF;
      IF jsonb_typeof(body) <> 'object' OR octet_length(body::text) > {MAX_DETAILS} THEN
        RAISE EXCEPTION 'audit: details must be a JSON object of at most {MAX_DETAILS} bytes'
          USING ERRCODE = 'invalid_parameter_value';
      END IF;
      PERFORM pg_advisory_xact_lock(hashtextextended('socle.audit:' || tenant::text, 0));
      -- Entries and heads are read and written in the chain's own context (RLS, forced on the
      -- owner too); the caller gets its context back before the function returns.
      PERFORM set_config('app.tenant_id', tenant::text, true);
      SELECT h.last_seq + 1, h.last_hash INTO next_seq, prev
        FROM {SCHEMA}.audit_heads h WHERE h.chain_id = tenant FOR UPDATE;
      IF NOT FOUND THEN
        IF tenant <> '{PLATFORM_TENANT}'::uuid AND NOT EXISTS (SELECT 1 FROM {SCHEMA}.tenants t WHERE t.id = tenant) THEN
          RAISE EXCEPTION 'audit: no tenant % in the registry: its chain cannot be started', tenant
            USING ERRCODE = 'foreign_key_violation';
        END IF;
        next_seq := 1;
        prev := decode(repeat('00', 32), 'hex');
      END IF;
      stamp := clock_timestamp();
      PERFORM {SCHEMA}.ensure_audit_partition(tenant, stamp);
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


def _bound_function() -> str:
    writers = ", ".join(f"'{role}'" for role in sorted(CHAIN_WRITERS))
    return f"""
    CREATE OR REPLACE FUNCTION {SCHEMA}.append_audit({_ARGS}) RETURNS bigint LANGUAGE plpgsql {_DEFINER} AS $$
    DECLARE
      context uuid := coalesce({CURRENT_TENANT_SQL}, '{PLATFORM_TENANT}'::uuid);
    BEGIN
      -- session_user: the role that logged in, which SET ROLE cannot change.
      IF tenant IS DISTINCT FROM context AND session_user NOT IN ({writers}) THEN
        RAISE EXCEPTION 'audit: % writes only the chain of the tenant in context (%), not %', session_user, context,
          coalesce(tenant::text, 'none') USING ERRCODE = 'insufficient_privilege',
          HINT = 'open the tenant''s context (app.tenant_id) for the write: no context is the platform chain';
      END IF;
      RETURN {SCHEMA}.audit_append_entry(tenant, actor, action, target, outcome, details);
    END $$
    """


def _grants_trigger() -> str:
    return f"""
    CREATE FUNCTION {SCHEMA}.data_grants_audit() RETURNS trigger LANGUAGE plpgsql {_DEFINER} AS $$
    DECLARE
      g {SCHEMA}.data_grants%ROWTYPE;
      verb text;
      who text := 'database:' || session_user;
      why text;
      party record;
    BEGIN
      IF TG_OP = 'INSERT' THEN
        g := NEW; verb := 'create'; who := NEW.created_by; why := NEW.reason;
      ELSIF TG_OP = 'DELETE' THEN
        g := OLD; verb := 'delete';
      ELSIF OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL THEN
        g := NEW; verb := 'revoke'; who := NEW.revoked_by; why := NEW.revocation_reason;
      ELSE
        g := NEW; verb := 'update';
      END IF;
      FOR party IN
        SELECT p.tenant, p.side FROM (VALUES (g.grantor_tenant_id, 'grantor'), (g.grantee_tenant_id, 'grantee'))
          AS p(tenant, side) ORDER BY p.tenant
      LOOP
        PERFORM {SCHEMA}.audit_append_entry(party.tenant, who, 'grants.' || verb, 'grant:' || g.id, 'success',
          jsonb_build_object('side', party.side, 'grantor_tenant_id', g.grantor_tenant_id,
            'grantee_tenant_id', g.grantee_tenant_id, 'dataset', g.dataset, 'resource_id', g.resource_id,
            'expires_at', g.expires_at, 'reason', why, 'database_role', session_user));
      END LOOP;
      RETURN NULL;
    END $$
    """


def _known_function() -> str:
    return f"""
    CREATE FUNCTION {SCHEMA}.audit_chains_known(chains uuid[]) RETURNS uuid[] LANGUAGE sql STABLE {_DEFINER} AS $$
      SELECT coalesce(array_agg(DISTINCT c), '{{}}') FROM unnest(chains) AS c
      WHERE c = '{PLATFORM_TENANT}'::uuid
         OR EXISTS (SELECT 1 FROM {SCHEMA}.tenants t WHERE t.id = c)
         OR to_regclass('{SCHEMA}.audit_entries_' || replace(c::text, '-', '')) IS NOT NULL
    $$
    """


def upgrade() -> None:
    for role in sorted(CHAIN_WRITERS):
        op.execute(
            f"""
            DO $$ BEGIN
              IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
                RAISE EXCEPTION 'role {role} is missing: provision every service''s roles '
                  '(socle_core.provisioning.provision_service) before tenancy''s migrations';
              END IF;
            END $$
            """
        )
    op.execute(_entry_function())
    op.execute(f"REVOKE ALL ON FUNCTION {SCHEMA}.audit_append_entry{_SIGNATURE} FROM PUBLIC")
    op.execute(_bound_function())

    op.execute(f"ALTER TABLE {SCHEMA}.audit_heads ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {SCHEMA}.audit_heads FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY {TENANT_POLICY} ON {SCHEMA}.audit_heads FOR ALL "
        f"USING (chain_id = {CURRENT_TENANT_SQL}) WITH CHECK (chain_id = {CURRENT_TENANT_SQL})"
    )

    op.execute(f"ALTER TABLE {SCHEMA}.data_grants ADD COLUMN revocation_reason text")
    op.execute(
        f"ALTER TABLE {SCHEMA}.data_grants ADD CONSTRAINT ck_data_grants_revocation_reason CHECK "
        "(revocation_reason IS NULL OR (revoked_at IS NOT NULL AND char_length(revocation_reason) BETWEEN 1 AND 500))"
    )
    op.execute(f"GRANT UPDATE (revocation_reason) ON {SCHEMA}.data_grants TO {ROLES.app}")
    op.execute(_grants_trigger())
    op.execute(f"REVOKE ALL ON FUNCTION {SCHEMA}.data_grants_audit() FROM PUBLIC")
    op.execute(
        f"CREATE TRIGGER data_grants_audited AFTER INSERT OR UPDATE OR DELETE ON {SCHEMA}.data_grants "
        f"FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.data_grants_audit()"
    )
    op.execute(f"GRANT EXECUTE ON FUNCTION {SCHEMA}.append_audit{_SIGNATURE} TO {AUDIT_WRITER}")
    op.execute(_known_function())
    op.execute(f"REVOKE ALL ON FUNCTION {SCHEMA}.audit_chains_known(uuid[]) FROM PUBLIC")
    for role in sorted(CHAIN_WRITERS):
        op.execute(f"GRANT EXECUTE ON FUNCTION {SCHEMA}.audit_chains_known(uuid[]) TO {role}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {SCHEMA}.audit_chains_known(uuid[])")
    op.execute(f"DROP TRIGGER data_grants_audited ON {SCHEMA}.data_grants")
    op.execute(f"DROP FUNCTION {SCHEMA}.data_grants_audit()")
    op.execute(f"ALTER TABLE {SCHEMA}.data_grants DROP COLUMN revocation_reason")
    op.execute(f"DROP POLICY {TENANT_POLICY} ON {SCHEMA}.audit_heads")
    op.execute(f"ALTER TABLE {SCHEMA}.audit_heads NO FORCE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {SCHEMA}.audit_heads DISABLE ROW LEVEL SECURITY")
    # Revision 0003's writer was unbound: the entry function takes its name back (keeping its
    # validation, which only refuses what no service writes).
    op.execute(f"DROP FUNCTION {SCHEMA}.append_audit{_SIGNATURE}")
    op.execute(f"ALTER FUNCTION {SCHEMA}.audit_append_entry{_SIGNATURE} RENAME TO append_audit")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SCHEMA}.append_audit{_SIGNATURE} TO {AUDIT_WRITER}")
