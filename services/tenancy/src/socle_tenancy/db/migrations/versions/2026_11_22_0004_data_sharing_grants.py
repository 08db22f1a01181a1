# ruff: noqa: S608  (every name and value in this DDL is a constant of this module)
"""Data-sharing grants: a tenant lets another one read a dataset, or one resource of it, until a date.

``data_grants`` is seen by both parties and written by the grantor only (RLS); a grant is
never deleted, only revoked, and nothing but its revocation may change (trigger: provisioning
re-grants full DML on the schema's tables to the application role, so privileges alone would
not hold). ``shared_with_current_tenant`` (SECURITY DEFINER, STABLE) answers, for a row of
another service, whether a live grant of the row's owner lets the current tenant read it;
the shared-read policies of ``ingestion.devices`` and ``timeseries.readings`` call it, which
is why the group ``socle_grant_reader`` (every service's roles) may execute it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

from socle_core.migrations import CURRENT_TENANT_SQL
from socle_core.provisioning import GRANT_READER, ServiceRoles

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

SCHEMA = "tenancy"
ROLES = ServiceRoles.for_service(SCHEMA)
DATASETS = ("devices", "readings")


def upgrade() -> None:
    op.execute(
        f"""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{GRANT_READER}') THEN
            RAISE EXCEPTION 'role {GRANT_READER} is missing: provision the database again '
              '(socle_core.provisioning.provision_service) before running this migration';
          END IF;
        END $$
        """
    )
    datasets = ", ".join(f"'{d}'" for d in DATASETS)
    op.execute(
        f"""
        CREATE TABLE {SCHEMA}.data_grants (
            id uuid NOT NULL,
            grantor_tenant_id uuid NOT NULL,
            grantee_tenant_id uuid NOT NULL,
            dataset text NOT NULL,
            resource_id uuid,
            reason text NOT NULL,
            created_by text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            revoked_at timestamptz,
            revoked_by text,
            CONSTRAINT pk_data_grants PRIMARY KEY (id),
            CONSTRAINT fk_data_grants_grantor_tenant_id_tenants FOREIGN KEY (grantor_tenant_id)
              REFERENCES {SCHEMA}.tenants (id),
            CONSTRAINT fk_data_grants_grantee_tenant_id_tenants FOREIGN KEY (grantee_tenant_id)
              REFERENCES {SCHEMA}.tenants (id),
            CONSTRAINT ck_data_grants_dataset CHECK (dataset IN ({datasets})),
            CONSTRAINT ck_data_grants_two_parties CHECK (grantor_tenant_id <> grantee_tenant_id),
            CONSTRAINT ck_data_grants_expiry CHECK (expires_at > created_at),
            CONSTRAINT ck_data_grants_revocation CHECK ((revoked_at IS NULL) = (revoked_by IS NULL)),
            CONSTRAINT ck_data_grants_reason CHECK (char_length(reason) BETWEEN 3 AND 500)
        )
        """
    )
    op.execute(
        f"CREATE INDEX ix_data_grants_grantee_live ON {SCHEMA}.data_grants "
        f"(grantee_tenant_id, grantor_tenant_id, dataset) WHERE revoked_at IS NULL"
    )
    op.execute(f"CREATE INDEX ix_data_grants_grantor_tenant_id ON {SCHEMA}.data_grants (grantor_tenant_id)")

    current = CURRENT_TENANT_SQL
    op.execute(f"ALTER TABLE {SCHEMA}.data_grants ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {SCHEMA}.data_grants FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY grant_parties_read ON {SCHEMA}.data_grants FOR SELECT "
        f"USING (grantor_tenant_id = {current} OR grantee_tenant_id = {current})"
    )
    op.execute(
        f"CREATE POLICY grantor_creates ON {SCHEMA}.data_grants FOR INSERT "
        f"WITH CHECK (grantor_tenant_id = {current} AND expires_at > now() AND revoked_at IS NULL)"
    )
    op.execute(
        f"CREATE POLICY grantor_revokes ON {SCHEMA}.data_grants FOR UPDATE "
        f"USING (grantor_tenant_id = {current}) WITH CHECK (grantor_tenant_id = {current} AND revoked_at IS NOT NULL)"
    )
    op.execute(f"REVOKE ALL ON {SCHEMA}.data_grants FROM PUBLIC")
    op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {SCHEMA}.data_grants FROM {ROLES.app}")
    op.execute(f"GRANT UPDATE (revoked_at, revoked_by) ON {SCHEMA}.data_grants TO {ROLES.app}")
    op.execute(
        f"""
        CREATE FUNCTION {SCHEMA}.data_grants_only_revocation() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION 'a data-sharing grant is never deleted: revoke it' USING ERRCODE = 'insufficient_privilege';
          END IF;
          IF OLD.revoked_at IS NOT NULL THEN
            RAISE EXCEPTION 'data-sharing grant % is already revoked', OLD.id USING ERRCODE = 'insufficient_privilege';
          END IF;
          IF (NEW.id, NEW.grantor_tenant_id, NEW.grantee_tenant_id, NEW.dataset, NEW.resource_id, NEW.reason,
              NEW.created_by, NEW.created_at, NEW.expires_at)
             IS DISTINCT FROM (OLD.id, OLD.grantor_tenant_id, OLD.grantee_tenant_id, OLD.dataset, OLD.resource_id,
              OLD.reason, OLD.created_by, OLD.created_at, OLD.expires_at) THEN
            RAISE EXCEPTION 'only the revocation of a data-sharing grant may change' USING ERRCODE = 'insufficient_privilege';
          END IF;
          RETURN NEW;
        END $$
        """
    )
    op.execute(
        f"CREATE TRIGGER data_grants_only_revocation BEFORE UPDATE OR DELETE ON {SCHEMA}.data_grants "
        f"FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.data_grants_only_revocation()"
    )
    op.execute(
        f"""
        CREATE FUNCTION {SCHEMA}.shared_with_current_tenant(owner uuid, dataset text, resource uuid)
        RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
          SELECT $1 IS NOT NULL AND EXISTS (
            SELECT 1 FROM {SCHEMA}.data_grants g
            WHERE g.grantee_tenant_id = {current}
              AND g.grantor_tenant_id = $1
              AND g.dataset = $2
              AND (g.resource_id IS NULL OR g.resource_id = $3)
              AND g.revoked_at IS NULL
              AND g.expires_at > now()
          )
        $$
        """
    )
    op.execute(f"REVOKE ALL ON FUNCTION {SCHEMA}.data_grants_only_revocation() FROM PUBLIC")
    op.execute(f"REVOKE ALL ON FUNCTION {SCHEMA}.shared_with_current_tenant(uuid, text, uuid) FROM PUBLIC")
    op.execute(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {GRANT_READER}")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SCHEMA}.shared_with_current_tenant(uuid, text, uuid) TO {GRANT_READER}")


def downgrade() -> None:
    op.execute(f"REVOKE USAGE ON SCHEMA {SCHEMA} FROM {GRANT_READER}")
    op.execute(f"DROP FUNCTION {SCHEMA}.shared_with_current_tenant(uuid, text, uuid)")
    op.execute(f"DROP TABLE {SCHEMA}.data_grants")
    op.execute(f"DROP FUNCTION {SCHEMA}.data_grants_only_revocation()")
