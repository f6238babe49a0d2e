"""Signed records: the reviewer app signs what people decide, and everyone verifies before
believing it.

Ed25519 through ``cryptography``. A signature covers a record's content together with the
gate's request id and the question's fingerprint, as canonical JSON behind a domain tag, so an
answer is bound to the exact question its reviewer saw and to no other gate. A signed record
names its key (``key_id``: the first 16 hex digits of the SHA-256 of the raw public key), so
keys rotate: a ``Keyring`` holds every public key still trusted, and a key removed from it no
longer vouches for anything::

    signer = Signer.from_seed("a secret of at least 32 characters ...")
    signed = signer.sign_decision(decision, event.fingerprint)
    Keyring([signer.public]).verify_decision(signed, event.fingerprint)   # True

Public keys travel as text: ``ed25519:<base64url of the 32 raw bytes>``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .._errors import ConfigError
from ..storage import DecisionRecord, VoteRecord

DOMAIN = "hitl-record-v1"
KEY_PREFIX = "ed25519:"
MIN_SEED_CHARS = 32


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_id(raw_public: bytes) -> str:
    """A public key's id: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(raw_public).hexdigest()[:16]


def _canonical(kind: str, fields: dict[str, Any]) -> bytes:
    body = {"domain": DOMAIN, "kind": kind, **fields}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def decision_payload(record: DecisionRecord, fingerprint: str) -> bytes:
    """What a decision's signature covers: everything it says, the gate and the question."""
    return _canonical(
        "decision",
        {
            "request_id": record.request_id,
            "fingerprint": fingerprint,
            "status": record.status,
            "value": record.value,
            "default_applied": record.default_applied,
            "answered_by": record.answered_by,
            "answered_at": record.answered_at.isoformat(),
            "via": record.via,
            "comment": record.comment,
            "votes": [v.signature for v in record.votes] if record.votes is not None else None,
        },
    )


def vote_payload(vote: VoteRecord, fingerprint: str) -> bytes:
    """What a vote's signature covers."""
    return _canonical(
        "vote",
        {
            "request_id": vote.request_id,
            "fingerprint": fingerprint,
            "reviewer": vote.reviewer,
            "approved": vote.approved,
            "reason": vote.reason,
            "cast_at": vote.cast_at.isoformat(),
            "via": vote.via,
        },
    )


@dataclass(frozen=True)
class PublicKey:
    """One trusted public key; ``use`` says whose it is (``app`` or ``operator``)."""

    raw: bytes
    use: str = "app"

    @property
    def key_id(self) -> str:
        return key_id(self.raw)

    @property
    def text(self) -> str:
        return KEY_PREFIX + _b64(self.raw)

    @classmethod
    def parse(cls, text: str, use: str = "app") -> PublicKey:
        """``ed25519:<base64url>`` (the prefix may be left out); ``ConfigError`` otherwise."""
        body = text.strip().removeprefix(KEY_PREFIX)
        try:
            raw = _unb64(body)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise ConfigError(
                f"{text[:60]!r} is not an Ed25519 public key: give ed25519:<base64url of 32 "
                "bytes>, as `hitl keys` or the app's /.well-known/hitl-keys prints it"
            )
        return cls(raw, use)


class Signer:
    """A private key that signs records (the reviewer app's, or an operator's)."""

    def __init__(self, private: Any, use: str = "app") -> None:
        from cryptography.hazmat.primitives import serialization

        self._private = private
        raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public = PublicKey(raw, use)
        self.key_id = self.public.key_id

    @classmethod
    def from_seed(cls, seed: str | bytes, use: str = "app") -> Signer:
        """The key a secret derives (SHA-256 of it is the Ed25519 private key): any text of at
        least 32 characters, such as Secrets Manager's generated strings."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        text = seed.encode() if isinstance(seed, str) else seed
        if len(text.strip()) < MIN_SEED_CHARS:
            raise ConfigError(
                f"a signing key needs a secret of at least {MIN_SEED_CHARS} characters; "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        digest = hashlib.sha256(text.strip()).digest()
        return cls(Ed25519PrivateKey.from_private_bytes(digest), use)

    @classmethod
    def generate(cls, use: str = "app") -> tuple[Signer, str]:
        """A new key and the seed that makes it again."""
        seed = _b64(os.urandom(48))
        return cls.from_seed(seed, use), seed

    def sign(self, payload: bytes) -> str:
        return _b64(self._private.sign(payload))

    def sign_decision(self, record: DecisionRecord, fingerprint: str) -> DecisionRecord:
        payload = decision_payload(record, fingerprint)
        return record.model_copy(update={"key_id": self.key_id, "signature": self.sign(payload)})

    def sign_vote(self, vote: VoteRecord, fingerprint: str) -> VoteRecord:
        payload = vote_payload(vote, fingerprint)
        return vote.model_copy(update={"key_id": self.key_id, "signature": self.sign(payload)})

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id!r}, use={self.public.use!r})"


@dataclass
class Keyring:
    """The public keys a reader trusts, by key id."""

    keys: dict[str, PublicKey] = field(default_factory=dict)

    def __init__(self, keys: Iterable[PublicKey] = ()) -> None:
        self.keys = {k.key_id: k for k in keys}

    def __contains__(self, kid: object) -> bool:
        return kid in self.keys

    def __or__(self, other: Keyring) -> Keyring:
        return Keyring([*self.keys.values(), *other.keys.values()])

    def _verify(self, payload: bytes, kid: str | None, signature: str | None) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        key = self.keys.get(kid or "")
        if key is None or not signature:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(key.raw).verify(_unb64(signature), payload)
        except (InvalidSignature, ValueError):
            return False
        return True

    def verify_decision(self, record: DecisionRecord, fingerprint: str) -> bool:
        payload = decision_payload(record, fingerprint)
        return self._verify(payload, record.key_id, record.signature)

    def verify_vote(self, vote: VoteRecord, fingerprint: str) -> bool:
        return self._verify(vote_payload(vote, fingerprint), vote.key_id, vote.signature)

    def document(self) -> dict[str, Any]:
        """The keys as the reviewer app publishes them (``/.well-known/hitl-keys``)."""
        return {
            "keys": [
                {"kid": k.key_id, "alg": "Ed25519", "use": k.use, "public_key": k.text}
                for k in self.keys.values()
            ]
        }

    @classmethod
    def from_document(cls, data: object) -> Keyring:
        """The keys of a published document; ``ConfigError`` if it is not one."""
        entries = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise ConfigError("the key document has no list of keys")
        keys = []
        for entry in entries:
            if isinstance(entry, dict) and isinstance(entry.get("public_key"), str):
                use = str(entry.get("use") or "app")
                keys.append(PublicKey.parse(entry["public_key"], use))
        return cls(keys)

    @classmethod
    def parse(cls, text: str | Iterable[str]) -> Keyring:
        """``HITL_VERIFY_KEYS``: public keys separated by spaces or commas."""
        items = text.replace(",", " ").split() if isinstance(text, str) else list(text)
        return cls(PublicKey.parse(item) for item in items if item.strip())
