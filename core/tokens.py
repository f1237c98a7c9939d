"""Random bearer tokens for sign-in challenges and sessions; only their hashes are stored."""

from __future__ import annotations

import hashlib
import secrets


def new_token() -> tuple[str, str]:
    """Return (token, SHA-256 hex digest of the token)."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    # surrogatepass: a malformed token hashes to something no issued token has.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
