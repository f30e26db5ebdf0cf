"""Signing a delivery: ``X-Kodosumi-Signature: sha256=<hex HMAC-SHA256 of the raw body>``."""

import hashlib
import hmac
import secrets

HEADER = "X-Kodosumi-Signature"


def new_secret() -> str:
    return secrets.token_hex(32)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does: compare in constant time."""
    return hmac.compare_digest(signature(secret, body), header)
