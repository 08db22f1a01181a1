"""Forging tokens for the rejection suite: a key the realm publishes, claims we choose."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from joserfc import jwt
from joserfc.jwk import RSAKey


@dataclass
class SigningKey:
    private_pem: str
    certificate_pem: str
    kid: str = ""

    @classmethod
    def generate(cls) -> SigningKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "socle-test")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .sign(key, hashes.SHA256())
        )
        private_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return cls(private_pem, cert.public_bytes(serialization.Encoding.PEM).decode())

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        key = RSAKey.import_key(self.private_pem)
        return jwt.encode({"alg": "RS256", "typ": "JWT", "kid": self.kid, **header}, claims, key)


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT as it is written, signature unchecked (to read or tamper with it in a test)."""
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(claims: dict[str, Any], **header: Any) -> str:
    """A token with ``alg: none`` and an empty signature."""
    head = {"alg": "none", "typ": "JWT", **header}
    return f"{b64(json.dumps(head).encode())}.{b64(json.dumps(claims).encode())}."


def claims_for(issuer: str, audience: str = "socle-api", **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": "forged-subject",
        "typ": "Bearer",
        "iat": now,
        "exp": now + 300,
        "azp": "forged-client",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}
