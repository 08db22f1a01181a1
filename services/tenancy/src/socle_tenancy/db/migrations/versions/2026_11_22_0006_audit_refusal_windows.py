# ruff: noqa: S608  (every name and value in this DDL is a constant of this module)
"""Repeated refusals aggregated in the audit log: one entry per window, the rest counted.

A caller who hammers another tenant's resources would otherwise write one chained entry per
refused request. ``append_refusal(tenant, actor, action, target, outcome, details, kind,
window_seconds)`` appends the first refusal of (chain, actor, action, kind) in a window like
``append_audit`` does, and only counts the next ones in ``audit_refusal_windows``. When the
window is over, the next refusal of the same kind, or ``close_refusal_windows(chain)`` (run
before a chain is read), first appends one summary entry, same action, whose details carry
``suppressed`` (how many were counted), the first and last of them and the last target:
nothing is lost, the log grows by two entries per window at most.

``audit_refusal_windows`` is bookkeeping of the definer functions only: row-level security
is enabled without any policy (and not forced), so no role but the owner sees or changes a
row, whatever privileges provisioning grants. EXECUTE on both functions goes to the group
``socle_audit_writer``, like ``append_audit``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

from socle_core.provisioning import AUDIT_WRITER, ServiceRoles

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

SCHEMA = "tenancy"
ROLES = ServiceRoles.for_service(SCHEMA)
_DEFINER = "SECURITY DEFINER SET search_path = pg_catalog, pg_temp"
APPEND = f"{SCHEMA}.append_refusal(uuid, text, text, text, text, jsonb, text, integer)"
CLOSE = f"{SCHEMA}.close_refusal_windows(uuid)"
#: The summary of a closed window: the suppressed refusals, appended to the chain.
_SUMMARY = f"""
    PERFORM {SCHEMA}.append_audit(w.chain_id, w.actor, w.action, w.last_target, w.outcome,
      jsonb_build_object('kind', w.kind, 'suppressed', w.suppressed, 'window_opened_at', w.opened_at,
                         'window_seconds', w.window_seconds, 'first_suppressed_at', w.first_suppressed_at,
                         'last_suppressed_at', w.last_suppressed_at))"""


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE {SCHEMA}.audit_refusal_windows (
            chain_id uuid NOT NULL,
            actor text NOT NULL,
            action text NOT NULL,
            kind text NOT NULL,
            outcome text NOT NULL,
            opened_at timestamptz NOT NULL,
            window_seconds integer NOT NULL,
            suppressed bigint NOT NULL DEFAULT 0,
            first_suppressed_at timestamptz,
            last_suppressed_at timestamptz,
            last_target text,
            CONSTRAINT pk_audit_refusal_windows PRIMARY KEY (chain_id, actor, action, kind),
            CONSTRAINT ck_audit_refusal_windows_suppressed CHECK (suppressed >= 0),
            CONSTRAINT ck_audit_refusal_windows_window_seconds CHECK (window_seconds BETWEEN 1 AND 86400)
        )
        """
    )
    op.execute(f"ALTER TABLE {SCHEMA}.audit_refusal_windows ENABLE ROW LEVEL SECURITY")
    op.execute(f"REVOKE ALL ON {SCHEMA}.audit_refusal_windows FROM PUBLIC, {ROLES.app}")
    op.execute(
        f"""
        CREATE FUNCTION {SCHEMA}.append_refusal(
            tenant uuid, actor text, action text, target text, outcome text, details jsonb,
            kind text, window_seconds integer
        ) RETURNS bigint LANGUAGE plpgsql {_DEFINER} AS $$
        #variable_conflict use_column
        DECLARE
          w {SCHEMA}.audit_refusal_windows%ROWTYPE;
          stamp timestamptz := clock_timestamp();
          appended bigint;
        BEGIN
          IF tenant IS NULL OR coalesce(actor, '') = '' OR coalesce(action, '') = '' OR kind IS NULL THEN
            RAISE EXCEPTION 'audit: tenant, actor, action and kind are required' USING ERRCODE = 'null_value_not_allowed';
          END IF;
          -- One caller's refusals of one kind are counted in order; other callers do not wait.
          PERFORM pg_advisory_xact_lock(
            hashtextextended('socle.audit.refusals:' || tenant::text || '|' || actor || '|' || action || '|' || kind, 0));
          SELECT * INTO w FROM {SCHEMA}.audit_refusal_windows r
            WHERE r.chain_id = $1 AND r.actor = $2 AND r.action = $3 AND r.kind = $7 FOR UPDATE;
          IF FOUND AND w.opened_at + make_interval(secs => w.window_seconds) > stamp THEN
            UPDATE {SCHEMA}.audit_refusal_windows r
              SET suppressed = r.suppressed + 1, first_suppressed_at = coalesce(r.first_suppressed_at, stamp),
                  last_suppressed_at = stamp, last_target = $4
              WHERE r.chain_id = w.chain_id AND r.actor = w.actor AND r.action = w.action AND r.kind = w.kind;
            RETURN NULL;
          END IF;
          IF FOUND AND w.suppressed > 0 THEN
            {_SUMMARY};
          END IF;
          appended := {SCHEMA}.append_audit(tenant, actor, action, target, outcome, details);
          INSERT INTO {SCHEMA}.audit_refusal_windows AS r
              (chain_id, actor, action, kind, outcome, opened_at, window_seconds)
            VALUES ($1, $2, $3, $7, $5, stamp, $8)
            ON CONFLICT (chain_id, actor, action, kind) DO UPDATE
              SET outcome = EXCLUDED.outcome, opened_at = EXCLUDED.opened_at,
                  window_seconds = EXCLUDED.window_seconds, suppressed = 0,
                  first_suppressed_at = NULL, last_suppressed_at = NULL, last_target = NULL;
          RETURN appended;
        END $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION {SCHEMA}.close_refusal_windows(chain uuid) RETURNS integer LANGUAGE plpgsql {_DEFINER} AS $$
        DECLARE
          w {SCHEMA}.audit_refusal_windows%ROWTYPE;
          closed integer := 0;
        BEGIN
          FOR w IN
            SELECT * FROM {SCHEMA}.audit_refusal_windows r
              WHERE r.chain_id = chain AND r.opened_at + make_interval(secs => r.window_seconds) <= clock_timestamp()
              ORDER BY r.opened_at FOR UPDATE SKIP LOCKED
          LOOP
            IF w.suppressed > 0 THEN
              {_SUMMARY};
              closed := closed + 1;
            END IF;
            DELETE FROM {SCHEMA}.audit_refusal_windows r
              WHERE r.chain_id = w.chain_id AND r.actor = w.actor AND r.action = w.action AND r.kind = w.kind;
          END LOOP;
          RETURN closed;
        END $$
        """
    )
    for signature in (APPEND, CLOSE):
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {AUDIT_WRITER}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {CLOSE}")
    op.execute(f"DROP FUNCTION {APPEND}")
    op.execute(f"DROP TABLE {SCHEMA}.audit_refusal_windows")
