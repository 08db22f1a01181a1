"""Tenant lifecycle, onboarding workflow state and quotas.

``tenants`` stays the registry (not tenant-owned: it defines the tenants). It gains the
official identifiers and population of the commune or EPCI, the lifecycle dates and reason,
and the Keycloak organization. At most one EPCI per deployment.

``onboarding_steps`` (the resumable workflow state) and ``quotas`` are tenant-owned: RLS
enabled, forced, and the tenant isolation policy, through ``tenant_owned_table``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from socle_core.migrations import tenant_owned_table

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

SCHEMA = "tenancy"
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    for column in (
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("population", sa.Integer(), nullable=True),
        sa.Column("population_year", sa.Integer(), nullable=True),
        sa.Column("population_reference", sa.Text(), nullable=True),
        sa.Column("email_domains", postgresql.ARRAY(sa.Text()), nullable=False, server_default="{}"),
        sa.Column("first_admin_email", sa.Text(), nullable=True),
        sa.Column("keycloak_organization_id", sa.Text(), nullable=True),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("status_changed_at", _TS, nullable=False, server_default=sa.func.now()),
        sa.Column("activated_at", _TS, nullable=True),
        sa.Column("suspended_at", _TS, nullable=True),
        sa.Column("offboarding_at", _TS, nullable=True),
        sa.Column("deleted_at", _TS, nullable=True),
        sa.Column("updated_at", _TS, nullable=False, server_default=sa.func.now()),
    ):
        op.add_column("tenants", column, schema=SCHEMA)
    op.create_foreign_key(
        "fk_tenants_parent_id_tenants",
        "tenants",
        "tenants",
        ["parent_id"],
        ["id"],
        source_schema=SCHEMA,
        referent_schema=SCHEMA,
    )
    op.create_unique_constraint("uq_tenants_siren", "tenants", ["siren"], schema=SCHEMA)
    op.create_unique_constraint("uq_tenants_insee_code", "tenants", ["insee_code"], schema=SCHEMA)
    op.create_unique_constraint(
        "uq_tenants_keycloak_organization_id", "tenants", ["keycloak_organization_id"], schema=SCHEMA
    )
    op.create_index("ix_tenants_parent_id", "tenants", ["parent_id"], schema=SCHEMA)
    # One EPCI owns the deployment: a second one is refused by the database too.
    op.create_index(
        "uq_tenants_one_epci",
        "tenants",
        ["kind"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("kind = 'epci'"),
    )
    op.create_check_constraint(
        "identifiers",
        "tenants",
        "(kind = 'epci' AND siren IS NOT NULL AND insee_code IS NULL AND parent_id IS NULL)"
        " OR (kind = 'commune' AND insee_code IS NOT NULL AND parent_id IS NOT NULL)",
        schema=SCHEMA,
    )
    op.create_check_constraint("population", "tenants", "population IS NULL OR population >= 0", schema=SCHEMA)

    tenant_owned_table(
        "onboarding_steps",
        SCHEMA,
        sa.Column("step", sa.Text(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("result", postgresql.JSONB(), nullable=False, server_default="{}"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("started_at", _TS, nullable=True),
        sa.Column("finished_at", _TS, nullable=True),
        sa.Column("updated_at", _TS, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "step", name="pk_onboarding_steps"),
        sa.ForeignKeyConstraint(["tenant_id"], [f"{SCHEMA}.tenants.id"], name="fk_onboarding_steps_tenant_id_tenants"),
        sa.CheckConstraint("status IN ('pending', 'running', 'done', 'failed')", name="status"),
    )
    tenant_owned_table(
        "quotas",
        SCHEMA,
        sa.Column("max_devices", sa.Integer(), nullable=False),
        sa.Column("max_readings_per_day", sa.BigInteger(), nullable=False),
        sa.Column("storage_gb", sa.Integer(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_quotas"),
        sa.ForeignKeyConstraint(["tenant_id"], [f"{SCHEMA}.tenants.id"], name="fk_quotas_tenant_id_tenants"),
        sa.CheckConstraint("max_devices >= 0 AND max_readings_per_day >= 0 AND storage_gb >= 0", name="non_negative"),
    )


def downgrade() -> None:
    op.drop_table("quotas", schema=SCHEMA)
    op.drop_table("onboarding_steps", schema=SCHEMA)
    op.drop_constraint("ck_tenants_population", "tenants", schema=SCHEMA)
    op.drop_constraint("ck_tenants_identifiers", "tenants", schema=SCHEMA)
    op.drop_index("uq_tenants_one_epci", "tenants", schema=SCHEMA)
    op.drop_index("ix_tenants_parent_id", "tenants", schema=SCHEMA)
    op.drop_constraint("uq_tenants_keycloak_organization_id", "tenants", schema=SCHEMA)
    op.drop_constraint("uq_tenants_insee_code", "tenants", schema=SCHEMA)
    op.drop_constraint("uq_tenants_siren", "tenants", schema=SCHEMA)
    op.drop_constraint("fk_tenants_parent_id_tenants", "tenants", schema=SCHEMA)
    for name in (
        "updated_at",
        "deleted_at",
        "offboarding_at",
        "suspended_at",
        "activated_at",
        "status_changed_at",
        "status_reason",
        "keycloak_organization_id",
        "first_admin_email",
        "email_domains",
        "population_reference",
        "population_year",
        "population",
        "parent_id",
    ):
        op.drop_column("tenants", name, schema=SCHEMA)
