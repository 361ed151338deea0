"""Signed tokens: one-click unsubscribe links and personal coupon codes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path
from urllib.parse import urlencode

from tasks.settings import Settings

KEY_FILE = "signing.key"


def signing_key(settings: Settings) -> bytes:
    """Return the HMAC key: the configured secret, else one random key kept in the state folder."""
    if settings.unsubscribe_secret is not None:
        return settings.unsubscribe_secret.get_secret_value().encode()
    path: Path = settings.state_dir / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(secrets.token_bytes(32))
        path.chmod(0o600)
    return path.read_bytes()


def sign(key: bytes, *parts: str) -> str:
    """Return a URL-safe HMAC-SHA256 signature of the parts."""
    digest = hmac.new(key, "\x1f".join(parts).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode().rstrip("=")


def verify(key: bytes, token: str, *parts: str) -> bool:
    """Check a signature made by ``sign`` in constant time."""
    return hmac.compare_digest(sign(key, *parts), token)


def unsubscribe_url(key: bytes, base_url: str, customer_id: str, channel: str) -> str:
    """Return the one-click unsubscribe URL for a customer and channel (RFC 8058 POST target)."""
    query = urlencode({"c": customer_id, "ch": channel, "t": sign(key, "unsubscribe", customer_id, channel)})
    return f"{base_url}?{query}"


def coupon_code(key: bytes, prefix: str, idempotency_key: str) -> str:
    """Return a personal coupon code, the same for the same message on every run."""
    digest = hmac.new(key, f"coupon\x1f{idempotency_key}".encode(), hashlib.sha256).digest()
    return f"{prefix}-{base64.b32encode(digest[:5]).decode()}"
