"""The console as an OpenID Connect client of the realm (authorization code + PKCE, confidential).

Small and explicit on purpose: discovery, the authorization URL, the code exchange, the
refresh grant and the end-session URL are a few HTTP calls each; the tokens Keycloak
returns to the console (ID token, back-channel logout token) are verified with the core's
``TokenVerifier`` machinery (algorithm allow-list, realm JWKS only, kid refresh limits) and
the claim checks OIDC requires of a client.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from socle_console.config import ConsoleSettings
from socle_core.auth import InvalidToken, TokenVerifier
from socle_core.errors import ServiceUnavailable

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
#: A logout token without ``exp`` is accepted only this long after it was issued.
LOGOUT_TOKEN_MAX_AGE_SECONDS = 300


def random_token(nbytes: int = 32) -> str:
    """URL-safe random text; 32 bytes give 43 characters (state, nonce: at least 32)."""
    return secrets.token_urlsafe(nbytes)


def pkce_challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    end_session_endpoint: str


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str | None
    id_token: str | None
    expires_at: float
    refresh_expires_at: float | None

    @classmethod
    def of(cls, body: dict[str, Any]) -> TokenSet:
        now = time.time()
        refresh_in = body.get("refresh_expires_in")
        return cls(
            access_token=str(body["access_token"]),
            refresh_token=body.get("refresh_token"),
            id_token=body.get("id_token"),
            expires_at=now + float(body.get("expires_in", 60)),
            refresh_expires_at=now + float(refresh_in) if refresh_in else None,
        )


class TokenRequestRefused(Exception):
    """Keycloak refused a grant (expired or reused refresh token, bad code): the user must log in."""


class ClientTokenVerifier(TokenVerifier):
    """Verifies tokens the realm issues *to the console* (ID tokens, logout tokens).

    Same key handling as access-token verification; the claims differ: the audience is the
    console's client id and the ``typ`` is ``ID`` or ``Logout``, never ``Bearer``.
    """

    def __init__(self, issuer: str, client_id: str, token_type: str, **kwargs: Any) -> None:
        super().__init__(issuer, client_id, **kwargs)
        self.token_type = token_type

    def _check_type_and_lifetime(self, claims: dict[str, Any]) -> None:
        now = time.time()
        if str(claims.get("typ", "")).lower() != self.token_type.lower():
            raise InvalidToken(f"un jeton {self.token_type} est attendu")
        iat = claims.get("iat")
        if not isinstance(iat, int | float) or now + self.leeway < iat:
            raise InvalidToken("le jeton n'a pas de date d'émission valide")
        exp = claims.get("exp")
        if exp is None and self.token_type == "Logout":
            if now - iat > LOGOUT_TOKEN_MAX_AGE_SECONDS + self.leeway:
                raise InvalidToken("le jeton de déconnexion est trop ancien")
        elif not isinstance(exp, int | float) or now > exp + self.leeway:
            raise InvalidToken("le jeton a expiré")


class OidcClient:
    """The console's view of the realm's endpoints, for one confidential client."""

    def __init__(self, settings: ConsoleSettings, http: httpx.AsyncClient) -> None:
        if settings.oidc_client_secret is None:
            raise ValueError("the console's OIDC client needs SOCLE_CONSOLE_OIDC_CLIENT_SECRET")
        self.settings = settings
        self.client_id = settings.oidc_client_id
        self._secret = settings.oidc_client_secret.get_secret_value()
        self._http = http
        self._metadata: ProviderMetadata | None = None
        common: dict[str, Any] = {
            "algorithms": settings.oidc_algorithms,
            "leeway_seconds": settings.oidc_leeway_seconds,
            "jwks_cache_seconds": settings.oidc_jwks_cache_seconds,
            "http_client": http,
        }
        self.id_tokens = ClientTokenVerifier(settings.oidc_issuer, self.client_id, "ID", **common)
        self.logout_tokens = ClientTokenVerifier(settings.oidc_issuer, self.client_id, "Logout", **common)

    async def metadata(self) -> ProviderMetadata:
        if self._metadata is None:
            try:
                response = await self._http.get(f"{self.settings.oidc_issuer}/.well-known/openid-configuration")
                response.raise_for_status()
                document = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise ServiceUnavailable(f"le fournisseur d'identité est injoignable : {exc}") from exc
            if document.get("issuer") != self.settings.oidc_issuer:
                raise ServiceUnavailable(
                    f"le fournisseur d'identité annonce l'émetteur {document.get('issuer')!r}, "
                    f"{self.settings.oidc_issuer!r} est attendu : vérifiez SOCLE_CONSOLE_OIDC_ISSUER"
                )
            self._metadata = ProviderMetadata(
                issuer=document["issuer"],
                authorization_endpoint=document["authorization_endpoint"],
                token_endpoint=document["token_endpoint"],
                end_session_endpoint=document["end_session_endpoint"],
            )
        return self._metadata

    async def authorization_url(
        self, *, state: str, nonce: str, code_verifier: str, scope: str, prompt: str | None = None
    ) -> str:
        params = {
            "client_id": self.client_id,
            "response_type": "code",
            "redirect_uri": self.settings.callback_url,
            "scope": scope,
            "state": state,
            "nonce": nonce,
            "code_challenge": pkce_challenge(code_verifier),
            "code_challenge_method": "S256",
        }
        if prompt:
            params["prompt"] = prompt
        return f"{(await self.metadata()).authorization_endpoint}?{urlencode(params)}"

    async def _token_request(self, data: dict[str, str]) -> TokenSet:
        endpoint = (await self.metadata()).token_endpoint
        try:
            response = await self._http.post(endpoint, data=data, auth=(self.client_id, self._secret))
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"le point de jetons du fournisseur d'identité est injoignable : {exc}") from exc
        if response.status_code in (400, 401):
            raise TokenRequestRefused(response.text[:300])
        if response.status_code != 200:
            raise ServiceUnavailable(f"le point de jetons du fournisseur d'identité a répondu {response.status_code}")
        return TokenSet.of(response.json())

    async def exchange_code(self, code: str, code_verifier: str) -> TokenSet:
        return await self._token_request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.settings.callback_url,
                "code_verifier": code_verifier,
            }
        )

    async def refresh(self, refresh_token: str) -> TokenSet:
        return await self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})

    async def verify_id_token(self, token: str, *, nonce: str) -> dict[str, Any]:
        claims = await self.id_tokens.verify(token)
        if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise InvalidToken("le nonce du jeton d'identité ne correspond pas à cette connexion")
        azp = claims.get("azp")
        if azp is not None and azp != self.client_id:
            raise InvalidToken("le jeton d'identité a été émis pour un autre client")
        return claims

    async def verify_logout_token(self, token: str) -> dict[str, Any]:
        claims = await self.logout_tokens.verify(token)
        events = claims.get("events")
        if not isinstance(events, dict) or BACKCHANNEL_LOGOUT_EVENT not in events:
            raise InvalidToken("le jeton de déconnexion n'a pas d'événement de déconnexion (back-channel)")
        if "nonce" in claims:
            raise InvalidToken("un jeton de déconnexion ne porte pas de nonce")
        if not claims.get("sid") and not claims.get("sub"):
            raise InvalidToken("le jeton de déconnexion ne désigne ni une session (sid) ni une personne (sub)")
        return claims

    async def end_session_url(self, id_token: str | None) -> str:
        params = {"client_id": self.client_id, "post_logout_redirect_uri": f"{self.settings.public_url}/"}
        if id_token:
            params["id_token_hint"] = id_token
        return f"{(await self.metadata()).end_session_endpoint}?{urlencode(params)}"

    async def aclose(self) -> None:
        await self.id_tokens.aclose()
        await self.logout_tokens.aclose()
