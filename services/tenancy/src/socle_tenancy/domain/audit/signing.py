"""Ed25519 signatures of the audit chains' heads, with a key derived from a configured secret.

The secret (``SOCLE_TENANCY_AUDIT_HEADS_SIGNING_KEY``, 32+ random characters, from a Secret)
never leaves the tenancy service and is not in the database, so whoever rewrites the
database cannot sign a head. The Ed25519 key is derived from it with HKDF-SHA256; its
public half (``GET /v1/audit/heads`` shows it) is what auditors keep to check signatures,
``key_id`` (the first 16 hex digits of its SHA-256) says which key signed a head.

A signed head is one JSON object; its signature covers the object without ``signature``,
serialized with sorted keys, no insignificant whitespace, UTF-8.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import SecretStr

from socle_core.settings import DEV_SECRET_MARKER

ALGORITHM = "Ed25519"
RECORD_TYPE = "socle.audit.head"
MIN_KEY_LENGTH = 32
SETTING = "SOCLE_TENANCY_AUDIT_HEADS_SIGNING_KEY"
_INFO = b"socle audit chain heads, Ed25519"


class SigningKeyError(ValueError):
    """The signing key is missing, too short, or a development key outside development."""


class SignatureError(ValueError):
    """A signed head whose signature does not hold, or that no known key signed."""


def check_key(key: SecretStr | None, environment: str) -> SecretStr:
    if key is None or not key.get_secret_value():
        raise SigningKeyError(
            "aucune clé de signature des têtes d'audit : définissez "
            f"{SETTING} (32 caractères aléatoires ou plus, depuis un Secret)"
        )
    if len(key.get_secret_value()) < MIN_KEY_LENGTH:
        raise SigningKeyError(f"{SETTING} doit compter au moins {MIN_KEY_LENGTH} caractères")
    if DEV_SECRET_MARKER in key.get_secret_value() and environment != "development":
        raise SigningKeyError(
            f"un {SETTING} de développement est refusé quand environment={environment} : définissez-en un vrai"
        )
    return key


def _public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()[:16]


def canonical(record: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in record.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class HeadSigner:
    """Signs chain heads with the key derived from the configured secret."""

    def __init__(self, secret: SecretStr) -> None:
        seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
            secret.get_secret_value().encode("utf-8")
        )
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key = _public_raw(self._key.public_key())
        self.key_id = key_id(self.public_key)

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(self.public_key).decode()

    def sign(
        self, chain_id: Any, seq: int, last_hash: bytes, head_updated_at: dt.datetime, signed_at: dt.datetime
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "type": RECORD_TYPE,
            "chain_id": str(chain_id),
            "seq": seq,
            "hash": last_hash.hex(),
            "head_updated_at": _utc(head_updated_at),
            "signed_at": _utc(signed_at),
            "algorithm": ALGORITHM,
            "key_id": self.key_id,
        }
        record["signature"] = _b64(self._key.sign(canonical(record)))
        return record


def public_key_of(text: str) -> bytes:
    """A public key as ``GET /v1/audit/heads`` shows it (base64 of the 32 raw bytes)."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"pas une clé publique Ed25519 en base64 : {text[:60]!r}") from exc
    if len(raw) != 32:
        raise SignatureError("une clé publique Ed25519 fait 32 octets")
    return raw


class HeadVerifier:
    """Checks signed heads against the public keys an auditor trusts."""

    def __init__(self, public_keys: Iterable[bytes]) -> None:
        self._keys = {key_id(raw): Ed25519PublicKey.from_public_bytes(raw) for raw in public_keys}

    def check(self, record: Mapping[str, Any]) -> None:
        if record.get("algorithm") != ALGORITHM:
            raise SignatureError(f"pas une signature {ALGORITHM} : {record.get('algorithm')!r}")
        key = self._keys.get(str(record.get("key_id")))
        if key is None:
            known = ", ".join(sorted(self._keys)) or "aucune"
            raise SignatureError(
                f"signée par la clé {record.get('key_id')!r}, qui n'est pas une clé de confiance ({known})"
            )
        try:
            key.verify(_unb64(str(record.get("signature", ""))), canonical(record))
        except (InvalidSignature, binascii.Error, ValueError) as exc:
            raise SignatureError("la signature ne correspond pas : la tête a été modifiée après sa signature") from exc
