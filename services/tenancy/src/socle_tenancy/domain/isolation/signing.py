"""The report's signature: Ed25519 over its canonical JSON, so verifying needs only the public key.

With a shared secret (HMAC) whoever can check a report can also forge one; with Ed25519 the
platform keeps the private key (``SOCLE_TENANCY_REPORT_SIGNING_KEY``, PEM) and anyone holds
the public one (``GET /v1/isolation/public-key``, ``socle-isolation-report public-key``).

Canonical form: the report without its ``signature`` member, serialized with sorted keys,
no insignificant whitespace, UTF-8. Any edit of any value breaks the signature. The report
carries the key id (a digest of the public key) to say which key signed it; a verifier uses
the public key it trusts, never one the report could bring along.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import SecretStr

from socle_core.settings import DEV_SECRET_MARKER

ALGORITHM = "Ed25519"
_PEM_BLOCK = re.compile(r"-----BEGIN (?P<label>[A-Z ]+)-----.+?-----END (?P=label)-----", re.DOTALL)


class SigningKeyError(ValueError):
    """The signing key is missing, not an Ed25519 private key, or a development key outside development."""


def private_key_from_pem(text: str) -> Ed25519PrivateKey:
    """The Ed25519 key of a PEM text; lines before the PEM block (a comment, the dev marker) are ignored."""
    block = _PEM_BLOCK.search(text.replace("\\n", "\n"))
    if block is None or block.group("label") != "PRIVATE KEY":
        raise SigningKeyError(
            "la clé de signature doit être une clé privée Ed25519 au format PEM (-----BEGIN PRIVATE KEY-----) : "
            "générez-la avec `openssl genpkey -algorithm ed25519`"
        )
    try:
        key = serialization.load_pem_private_key(block.group(0).encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"la clé de signature PEM est illisible : {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(
            f"la clé de signature est une clé {type(key).__name__}, pas Ed25519 : "
            "générez-la avec `openssl genpkey -algorithm ed25519`"
        )
    return key


def check_key(key: SecretStr | None, environment: str) -> Ed25519PrivateKey:
    """The private key that signs, refused when absent, malformed or a development key outside development."""
    if key is None or not key.get_secret_value().strip():
        raise SigningKeyError(
            "aucune clé de signature du rapport : définissez SOCLE_TENANCY_REPORT_SIGNING_KEY (une clé privée "
            "Ed25519 au format PEM, `openssl genpkey -algorithm ed25519`, par exemple depuis un Secret Kubernetes)"
        )
    value = key.get_secret_value()
    if DEV_SECRET_MARKER in value and environment != "development":
        raise SigningKeyError(
            f"une clé de signature de développement est refusée quand environment={environment} : "
            "définissez-en une vraie"
        )
    return private_key_from_pem(value)


def generate_pem(comment: str | None = None) -> str:
    """A new private key in PEM, after an optional comment line (e.g. the development marker)."""
    pem = (
        Ed25519PrivateKey.generate()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    return f"{comment}\n{pem}" if comment else pem


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def public_key_from_pem(text: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(text.encode())
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"la clé publique n'est pas une clé PEM lisible : {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"la clé publique est une clé {type(key).__name__}, pas Ed25519")
    return key


def key_id(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """A short digest of the public key: which key signed, without carrying it."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(b"socle-isolation-report-key:" + raw).hexdigest()[:16]


def published(key: Ed25519PrivateKey) -> dict[str, str]:
    """What the platform publishes for verifiers: the algorithm, the key id and the public key."""
    return {"algorithm": ALGORITHM, "key_id": key_id(key), "public_key_pem": public_key_pem(key)}


def canonical(report: dict[str, Any]) -> bytes:
    body = {k: v for k, v in report.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign(report: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """The report with its ``signature`` member set."""
    value = base64.b64encode(key.sign(canonical(report))).decode()
    return {**report, "signature": {"algorithm": ALGORITHM, "key_id": key_id(key), "value": value}}


def verify(report: dict[str, Any], public: Ed25519PublicKey) -> tuple[bool, str]:
    """Whether the report is exactly what the holder of this public key's private key signed, and why not."""
    signature = report.get("signature")
    if not isinstance(signature, dict) or signature.get("algorithm") != ALGORITHM:
        return False, f"le rapport ne porte aucune signature {ALGORITHM}"
    if signature.get("key_id") != key_id(public):
        return False, (
            f"signé avec une autre clé (identifiant {signature.get('key_id')}, celui de cette clé publique est "
            f"{key_id(public)})"
        )
    try:
        public.verify(base64.b64decode(str(signature.get("value", "")), validate=True), canonical(report))
    except (InvalidSignature, ValueError):
        return False, "la signature ne correspond pas : le rapport a été modifié après sa signature"
    return True, f"signature valide ({ALGORITHM}, clé {signature['key_id']})"
