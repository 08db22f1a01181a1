"""The billing service, as onboarding calls it: open the tenant's metering account.

Called with a token of the ``socle-platform`` service account (the one onboarding already
uses on Keycloak). ``PUT /v1/metering-accounts/{tenant_id}`` is idempotent, so a network
error or a 5xx is retried a few times, and a crash between the call and the commit that
records it is harmless: the next run gets the same account back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import structlog

from socle_core.errors import Conflict, ServiceUnavailable
from socle_tenancy.config import TenancySettings

log = structlog.get_logger("socle.tenancy.billing")

#: Pause before each retry of a billing call, in seconds.
BACKOFF_SECONDS = (0.2, 0.5, 1.0, 2.0)


class BillingNotConfigured(ServiceUnavailable):
    slug, title = "billing-not-configured", "Service de facturation non configuré"


class BillingError(ServiceUnavailable):
    """Billing could not be reached or failed; a retry may succeed."""

    slug, title = "billing-error", "Erreur du service de facturation"


class BillingConflict(Conflict):
    """Billing refuses for a reason a retry will not fix (e.g. the key belongs to another tenant)."""

    slug, title = "billing-conflict", "Conflit avec la facturation"


class BillingClient:
    def __init__(
        self,
        settings: TenancySettings,
        token: Callable[[], Awaitable[str]],
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._base = settings.billing_url
        self._attempts = settings.billing_attempts
        self._token = token
        self._http = httpx.AsyncClient(timeout=settings.billing_timeout_seconds, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def open_metering_account(self, tenant_id: str, tenant_key: str, kind: str) -> dict[str, Any]:
        """The tenant's open metering account (opened now, or by an earlier attempt)."""
        if self._base is None:
            raise BillingNotConfigured(
                "le service des collectivités ne sait pas où est la facturation : définissez "
                "SOCLE_TENANCY_BILLING_URL (par exemple http://socle-billing:8000), puis relancez l'onboarding"
            )
        url = f"{self._base}/v1/metering-accounts/{tenant_id}"
        body = {"tenant_key": tenant_key, "kind": kind}
        for attempt in range(1, self._attempts + 1):
            token = await self._token()
            try:
                response = await self._http.put(url, json=body, headers={"Authorization": f"Bearer {token}"})
            except httpx.HTTPError as exc:
                failure = f"la facturation est injoignable à {self._base} : {exc!r}"
            else:
                if response.status_code in (200, 201):
                    return dict(response.json())
                detail = _problem_detail(response)
                if response.status_code == 409:
                    raise BillingConflict(
                        f"la facturation a refusé le compte de consommation de {tenant_key} : {detail}"
                    )
                failure = f"la facturation a répondu {response.status_code} à PUT {url} : {detail}"
                if response.status_code < 500:  # our request or our credentials are wrong: retrying won't help
                    raise BillingError(failure)
            log.warning("billing_call_failed", attempt=attempt, error=failure)
            if attempt < self._attempts:
                await asyncio.sleep(BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS)) - 1])
        raise BillingError(f"{failure} (après {self._attempts} tentative(s))")


def _problem_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body)[:300]
    return str(body)[:300]
