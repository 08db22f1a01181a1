"""The onboarding workflow: idempotent, resumable, one committed transaction per step.

A tenant's onboarding is a fixed list of steps recorded in ``onboarding_steps``:

1. ``tenant_record`` — the registry row and the step plan, in one transaction;
2. ``identity_organization`` — the Keycloak organization (alias = tenant key, attribute
   ``tenant_id``, e-mail domains), found by its ``tenant_id`` before being created;
3. ``first_admin`` — the first admin's Keycloak account (found by e-mail or created with
   pending required actions), its admin realm role and its membership of the organization;
4. ``default_quotas`` — the tenant's quotas, unless already set;
5. ``metering_account`` — the tenant's metering account in the billing service (``PUT``,
   idempotent there), so usage is metered from the first reading;
6. ``activation`` — the tenant becomes ``active``.

Each step commits its outcome before the next one starts, because its side effects in
Keycloak cannot be rolled back: after a crash, the next run skips the steps marked done
and resumes at the first that is not. Every step is safe to repeat, so a crash between a
Keycloak call and the commit that records it is harmless too. A session-level advisory
lock keyed on the tenant makes concurrent runs for one tenant wait for nothing: the second
gets a 409.

Each step's outcome is recorded in the tenant's audit chain (``onboarding.<step>``) in the
same transaction that records it in ``onboarding_steps``: the log and the state never disagree.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from socle_core.audit import record as audit
from socle_core.auth import system_tenant
from socle_core.db import tenant_session
from socle_core.errors import Conflict, InvalidInput, Problem
from socle_reference import ReferenceCatalogue
from socle_tenancy.config import TenancySettings
from socle_tenancy.db.models import OnboardingStep, Quota, StepStatus, Tenant, TenantKind, TenantStatus
from socle_tenancy.domain.onboarding.billing import BillingClient
from socle_tenancy.domain.onboarding.schemas import OnboardingIn, StepOut
from socle_tenancy.domain.tenants.services import (
    change_status,
    commune_key,
    deployment_epci,
    reference_commune,
    registered_epci,
)
from socle_tenancy.keycloak import KeycloakAdmin

log = structlog.get_logger("socle.tenancy.onboarding")

TENANT_RECORD = "tenant_record"
IDENTITY_ORGANIZATION = "identity_organization"
FIRST_ADMIN = "first_admin"
DEFAULT_QUOTAS = "default_quotas"
METERING_ACCOUNT = "metering_account"
ACTIVATION = "activation"
STEPS = (TENANT_RECORD, IDENTITY_ORGANIZATION, FIRST_ADMIN, DEFAULT_QUOTAS, METERING_ACCOUNT, ACTIVATION)

ADMIN_ROLE = {TenantKind.commune.value: "commune-admin", TenantKind.epci.value: "epci-admin"}


class OnboardingInProgress(Conflict):
    slug, title = "onboarding-in-progress", "Onboarding en cours"


@dataclass(frozen=True)
class TenantDraft:
    """The registry row a first onboarding run creates, from the official reference."""

    kind: TenantKind
    key: str
    name: str
    siren: str | None
    insee_code: str | None
    parent_id: uuid.UUID | None
    population: int | None
    population_year: int | None
    population_reference: str | None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class OnboardingWorkflow:
    def __init__(
        self,
        engine: AsyncEngine,
        maker: async_sessionmaker[AsyncSession],
        keycloak: KeycloakAdmin,
        settings: TenancySettings,
        billing: BillingClient,
    ) -> None:
        self._engine = engine
        self._maker = maker
        self._keycloak = keycloak
        self._settings = settings
        self._billing = billing
        self._actions: dict[str, Callable[[uuid.UUID, dict[str, Any]], Awaitable[dict[str, Any]]]] = {
            IDENTITY_ORGANIZATION: self._identity_organization,
            FIRST_ADMIN: self._first_admin,
            DEFAULT_QUOTAS: self._default_quotas,
            METERING_ACCOUNT: self._metering_account,
            ACTIVATION: self._activation,
        }

    @property
    def session_maker(self) -> async_sessionmaker[AsyncSession]:
        return self._maker

    async def run(
        self, draft: TenantDraft, request: OnboardingIn, *, actor: str | None = None
    ) -> tuple[Tenant, list[OnboardingStep]]:
        """Run (or resume) the tenant's onboarding to its end; raise the failing step's problem.

        ``actor`` is who asked, as the audit log names them; by default the request's
        authenticated subject (bound to the log context by the auth middleware).
        """
        actor = actor or _request_subject()
        async with self._engine.connect() as lock_connection:
            locked = await lock_connection.scalar(
                text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))"), {"key": f"onboarding:{draft.key}"}
            )
            await lock_connection.commit()
            if not locked:
                raise OnboardingInProgress(
                    f"l'onboarding de {draft.key} est déjà en cours : réessayez quand il sera terminé"
                )
            try:
                tenant_id = await self._record_tenant(draft, request, actor)
                for step in STEPS[1:]:
                    try:
                        await self._run_step(tenant_id, step, actor)
                    except Problem as exc:
                        _, steps = await self.state(tenant_id)
                        exc.extensions.update(
                            tenant_id=str(tenant_id),
                            failed_step=step,
                            retry="send the same request again: the workflow resumes at the failed step",
                            steps=[StepOut.of(s).model_dump(mode="json") for s in steps],
                        )
                        raise
                return await self.state(tenant_id)
            finally:
                await lock_connection.execute(
                    text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))"), {"key": f"onboarding:{draft.key}"}
                )
                await lock_connection.commit()

    async def state(self, tenant_id: uuid.UUID) -> tuple[Tenant, list[OnboardingStep]]:
        async with self._scope(tenant_id, "read onboarding state") as session:
            tenant = await session.get(Tenant, tenant_id)
            assert tenant is not None
            steps = await session.scalars(
                select(OnboardingStep).where(OnboardingStep.tenant_id == tenant_id).order_by(OnboardingStep.position)
            )
            return tenant, list(steps)

    def _scope(self, tenant_id: uuid.UUID, reason: str) -> AbstractAsyncContextManager[AsyncSession]:
        """One committed transaction in the tenant's context (RLS applies to steps and quotas)."""
        return tenant_session(self._maker, system_tenant(tenant_id, reason=f"onboarding: {reason}"))

    async def _record_tenant(self, draft: TenantDraft, request: OnboardingIn, actor: str) -> uuid.UUID:
        """Step 1: the registry row and the plan; a re-run updates the plan while unfinished."""
        async with self._maker() as session, session.begin():
            existing = await session.scalar(select(Tenant).where(Tenant.key == draft.key))
        tenant_id = existing.id if existing is not None else uuid.uuid4()
        if existing is not None and existing.status not in (TenantStatus.invited, TenantStatus.active):
            raise Conflict(
                f"la collectivité {draft.key} est au statut {existing.status} : elle ne peut pas être réintégrée",
                tenant_id=str(existing.id),
                current_status=existing.status,
            )
        async with self._scope(tenant_id, "record tenant") as session:
            now = _now()
            if existing is None:
                tenant = Tenant(
                    id=tenant_id,
                    kind=draft.kind.value,
                    key=draft.key,
                    name=request.display_name or draft.name,
                    siren=draft.siren,
                    insee_code=draft.insee_code,
                    parent_id=draft.parent_id,
                    population=draft.population,
                    population_year=draft.population_year,
                    population_reference=draft.population_reference,
                    email_domains=list(request.email_domains or []),
                    first_admin_email=request.first_admin_email,
                    status=TenantStatus.invited.value,
                )
                session.add(tenant)
                await session.flush()
            else:
                tenant = await session.get(Tenant, tenant_id, with_for_update=True)
                assert tenant is not None
                if tenant.status == TenantStatus.invited:
                    if request.first_admin_email:
                        tenant.first_admin_email = request.first_admin_email
                    if request.email_domains is not None:
                        tenant.email_domains = list(request.email_domains)
                    if request.display_name:
                        tenant.name = request.display_name
                    tenant.updated_at = now
            if not tenant.first_admin_email:
                raise InvalidInput(
                    (
                        f"le premier onboarding de {draft.key} demande "
                        "l'adresse électronique de son premier administrateur"
                    ),
                    errors=[
                        {
                            "location": "body",
                            "field": "body.first_admin_email",
                            "detail": "obligatoire au premier passage",
                        }
                    ],
                )
            quotas = request.quotas.model_dump(exclude_none=True) if request.quotas else {}
            plan_rows = insert(OnboardingStep).values(
                [
                    {"tenant_id": tenant_id, "step": name, "position": position, "result": {}}
                    for position, name in enumerate(STEPS, start=1)
                ]
            )
            # A tenant onboarded before a step was added gets that step, in its place, on its next run.
            await session.execute(
                plan_rows.on_conflict_do_update(
                    index_elements=["tenant_id", "step"], set_={"position": plan_rows.excluded.position}
                )
            )
            record = await session.get(OnboardingStep, (tenant_id, TENANT_RECORD), with_for_update=True)
            assert record is not None
            if record.status != StepStatus.done or quotas:
                record.result = {"key": draft.key, "quotas": quotas or record.result.get("quotas", {})}
            record.status = StepStatus.done.value
            record.attempts += 1
            record.started_at = record.started_at or now
            record.finished_at = record.finished_at or now
            record.updated_at = now
            await session.flush()
            await audit(
                session,
                tenant_id,
                actor=actor,
                action=f"onboarding.{TENANT_RECORD}",
                target=f"tenant:{tenant_id}",
                details={"attempt": record.attempts, "result": record.result},
            )
        return tenant_id

    async def _run_step(self, tenant_id: uuid.UUID, name: str, actor: str) -> None:
        async with self._scope(tenant_id, f"start {name}") as session:
            step = await session.get(OnboardingStep, (tenant_id, name), with_for_update=True)
            assert step is not None
            if step.status == StepStatus.done:
                return
            record = await session.get(OnboardingStep, (tenant_id, TENANT_RECORD))
            plan = dict(record.result) if record else {}
            step.status = StepStatus.running.value
            step.attempts += 1
            step.started_at = _now()
            step.updated_at = step.started_at
        log.info("onboarding_step_started", tenant_id=str(tenant_id), step=name)
        try:
            result = await self._actions[name](tenant_id, plan)
        except Exception as exc:
            detail = exc.detail if isinstance(exc, Problem) else f"{type(exc).__name__}: {exc}"
            async with self._scope(tenant_id, f"record failure of {name}") as session:
                step = await session.get(OnboardingStep, (tenant_id, name), with_for_update=True)
                assert step is not None
                step.status = StepStatus.failed.value
                step.last_error = detail[:2000]
                step.updated_at = _now()
                await session.flush()
                await audit(
                    session,
                    tenant_id,
                    actor=actor,
                    action=f"onboarding.{name}",
                    target=f"tenant:{tenant_id}",
                    outcome="failure",
                    details={"attempt": step.attempts, "error": detail[:500]},
                )
            log.warning("onboarding_step_failed", tenant_id=str(tenant_id), step=name, error=detail)
            raise
        log.info("onboarding_step_done", tenant_id=str(tenant_id), step=name)

        async with self._scope(tenant_id, f"finish {name}") as session:
            step = await session.get(OnboardingStep, (tenant_id, name), with_for_update=True)
            assert step is not None
            step.status = StepStatus.done.value
            step.result = result
            step.last_error = None
            step.finished_at = _now()
            step.updated_at = step.finished_at
            if name == IDENTITY_ORGANIZATION:
                tenant = await session.get(Tenant, tenant_id, with_for_update=True)
                assert tenant is not None
                tenant.keycloak_organization_id = result["organization_id"]
            await session.flush()
            await audit(
                session,
                tenant_id,
                actor=actor,
                action=f"onboarding.{name}",
                target=f"tenant:{tenant_id}",
                details={"attempt": step.attempts, "result": result},
            )

    # -- the steps (each safe to repeat) -------------------------------------------

    async def _tenant(self, tenant_id: uuid.UUID) -> Tenant:
        async with self._scope(tenant_id, "read tenant") as session:
            tenant = await session.get(Tenant, tenant_id)
            assert tenant is not None
            return tenant

    async def _identity_organization(self, tenant_id: uuid.UUID, plan: dict[str, Any]) -> dict[str, Any]:
        tenant = await self._tenant(tenant_id)
        code = tenant.insee_code if tenant.kind == TenantKind.commune else tenant.siren
        label = "INSEE" if tenant.kind == TenantKind.commune else "SIREN"
        organization = await self._keycloak.ensure_organization(
            tenant_id=str(tenant.id),
            alias=tenant.key,
            name=f"{tenant.name} ({code})",
            domains=list(tenant.email_domains),
            description=f"Socle tenant {tenant.key} ({label} {code})",
            siren=tenant.siren,
        )
        if organization.get("alias") != tenant.key:
            raise Conflict(
                f"l'organisation Keycloak de la collectivité {tenant.id} a l'alias {organization.get('alias')!r}, "
                f"{tenant.key!r} est attendu"
            )
        return {"organization_id": str(organization["id"]), "alias": tenant.key}

    async def _first_admin(self, tenant_id: uuid.UUID, plan: dict[str, Any]) -> dict[str, Any]:
        tenant = await self._tenant(tenant_id)
        assert tenant.first_admin_email
        assert tenant.keycloak_organization_id
        user = await self._keycloak.ensure_invited_user(
            tenant.first_admin_email,
            realm_role=ADMIN_ROLE[tenant.kind],
            organization_id=tenant.keycloak_organization_id,
        )
        await self._keycloak.ensure_member(tenant.keycloak_organization_id, str(user["id"]))
        required_actions = list(user.get("requiredActions", []))
        # A retry after a crash may send the e-mail again: a second valid link is harmless.
        email_error = await self._keycloak.send_invitation(str(user["id"]), required_actions)
        return {
            "user_id": str(user["id"]),
            "email": tenant.first_admin_email,
            "role": ADMIN_ROLE[tenant.kind],
            "required_actions": required_actions,
            "invitation_email": "sent" if not email_error else "not sent",
            **({"invitation_email_error": email_error} if email_error else {}),
        }

    async def _default_quotas(self, tenant_id: uuid.UUID, plan: dict[str, Any]) -> dict[str, Any]:
        requested = plan.get("quotas") or {}
        values = {
            "max_devices": requested.get("max_devices", self._settings.default_max_devices),
            "max_readings_per_day": requested.get("max_readings_per_day", self._settings.default_max_readings_per_day),
            "storage_gb": requested.get("storage_gb", self._settings.default_storage_gb),
        }
        async with self._scope(tenant_id, "default quotas") as session:
            await session.execute(
                insert(Quota).values(tenant_id=tenant_id, **values).on_conflict_do_nothing(index_elements=["tenant_id"])
            )
            quota = await session.get(Quota, tenant_id)
            assert quota is not None
            return {
                "max_devices": quota.max_devices,
                "max_readings_per_day": quota.max_readings_per_day,
                "storage_gb": quota.storage_gb,
            }

    async def _metering_account(self, tenant_id: uuid.UUID, plan: dict[str, Any]) -> dict[str, Any]:
        tenant = await self._tenant(tenant_id)
        account = await self._billing.open_metering_account(str(tenant.id), tenant.key, tenant.kind)
        if account.get("tenant_id") != str(tenant.id) or account.get("tenant_key") != tenant.key:
            raise Conflict(
                f"la facturation a répondu le compte de consommation d'une autre collectivité que {tenant.key}"
            )
        return {
            "tenant_id": account["tenant_id"],
            "tenant_key": account["tenant_key"],
            "kind": account["kind"],
            "status": account["status"],
            "opened_at": account["opened_at"],
            "opened_by": account["opened_by"],
        }

    async def _activation(self, tenant_id: uuid.UUID, plan: dict[str, Any]) -> dict[str, Any]:
        async with self._scope(tenant_id, "activation") as session:
            tenant = await session.get(Tenant, tenant_id, with_for_update=True)
            assert tenant is not None
            if tenant.status == TenantStatus.invited:
                change_status(tenant, TenantStatus.active, "onboarding completed")
            return {"status": tenant.status}


def _request_subject() -> str:
    """The authenticated caller of the current request, or the workflow itself outside one."""
    subject = structlog.contextvars.get_contextvars().get("subject")
    return str(subject) if subject else "system:onboarding"


def is_completed(steps: list[OnboardingStep]) -> bool:
    return bool(steps) and all(s.status == StepStatus.done for s in steps)


async def commune_draft(
    maker: async_sessionmaker[AsyncSession], catalogue: ReferenceCatalogue, insee: str
) -> tuple[TenantDraft, str]:
    """The commune's registry row from the reference, under the deployment's EPCI; and that EPCI's SIREN."""
    commune = reference_commune(catalogue, insee)
    async with maker() as session, session.begin():
        epci = await deployment_epci(session)
    if epci is None:
        raise Conflict(
            f"aucun EPCI n'est enregistré sur cette plateforme : enregistrez l'EPCI {commune.epci_siren} "
            f"(POST /v1/epcis) avant l'onboarding de {commune.name}"
        )
    if epci.siren != commune.epci_siren:
        raise Conflict(
            f"{commune.name} (INSEE {commune.insee}) est membre de l'EPCI {commune.epci_siren}, "
            f"pas de l'EPCI de cette plateforme, {epci.siren} ({epci.name})",
            epci_siren=commune.epci_siren,
        )
    population = catalogue.source.population
    draft = TenantDraft(
        kind=TenantKind.commune,
        key=commune_key(commune.insee),
        name=commune.name,
        siren=commune.siren,
        insee_code=commune.insee,
        parent_id=epci.id,
        population=commune.population,
        population_year=population.millesime,
        population_reference=population.figure,
    )
    return draft, epci.siren


async def epci_draft(maker: async_sessionmaker[AsyncSession], siren: str) -> TenantDraft:
    """The registered EPCI's row (created by ``POST /v1/epcis``) as a draft to onboard."""
    async with maker() as session, session.begin():
        epci = await registered_epci(session, siren)
    return TenantDraft(
        kind=TenantKind.epci,
        key=epci.key,
        name=epci.name,
        siren=epci.siren,
        insee_code=None,
        parent_id=None,
        population=epci.population,
        population_year=epci.population_year,
        population_reference=epci.population_reference,
    )
