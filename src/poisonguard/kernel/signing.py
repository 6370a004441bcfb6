"""Signing: the one canonical JSON that is hashed and signed, the HMAC key, and signed documents
(verdicts, manifests) — what a document is known by and how its signature is checked."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poisonguard.errors import InputError, PromotionRefused


def canonical(obj: Any) -> bytes:
    """The one JSON serialisation that is hashed and signed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


@dataclass(frozen=True)
class SigningKey:
    """An HMAC key and the id recorded beside each signature (never the key itself)."""

    secret: bytes
    key_id: str

    def sign(self, message: bytes) -> str:
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def verify(self, message: bytes, signature: str) -> bool:
        return hmac.compare_digest(self.sign(message), signature)

    @classmethod
    def from_text(cls, text: str, key_id: str | None = None) -> SigningKey:
        secret = text.encode()
        if len(secret) < 16:
            raise InputError("the signing key is too short: use at least 16 characters (32 random bytes, hex, "
                             "is better). Set POISONGUARD_SIGNING_KEY to a longer secret.")
        return cls(secret, key_id or hashlib.sha256(b"poisonguard-key-id:" + secret).hexdigest()[:12])


def stable_part(document: Mapping[str, Any]) -> dict[str, Any]:
    """The verdict without what changes between identical runs (timings, signature)."""
    return {k: v for k, v in document.items() if k not in ("run", "signature")}


def document_sha256(document: Mapping[str, Any]) -> str:
    """The hash a verdict is known by: over its canonical JSON without the signature."""
    return hashlib.sha256(canonical({k: v for k, v in document.items() if k != "signature"})).hexdigest()


def sign_document(document: dict[str, Any], key: SigningKey | None) -> dict[str, Any]:
    """``document`` with a ``signature`` block (HMAC of :func:`document_sha256`) when a key is set."""
    if key is None:
        return document
    return document | {"signature": {"key_id": key.key_id, "hmac": key.sign(document_sha256(document).encode())}}


def verify_document(document: Mapping[str, Any], key: SigningKey | None, where: Path) -> None:
    """Refuse a verdict whose signature is missing or wrong while a key is configured."""
    if key is None:
        return
    sig = document.get("signature")
    if not isinstance(sig, Mapping) or "hmac" not in sig:
        raise PromotionRefused(f"{where} is not signed, but a signing key is configured. Only a verdict this "
                               "gate signed can be promoted; re-run the gate.")
    if sig.get("key_id") != key.key_id or not key.verify(document_sha256(document).encode(), str(sig["hmac"])):
        raise PromotionRefused(f"{where} has an invalid signature: it was edited, or signed with another key. "
                               "Re-run the gate.")
