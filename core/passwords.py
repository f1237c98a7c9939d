"""Password hashing with argon2id."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from core.errors import InvalidValue
from core.text import is_text

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024


def make_hasher(fast: bool = False) -> PasswordHasher:
    """Return argon2-cffi's hasher (RFC 9106 low-memory profile), or a cheap one for tests."""
    if fast:
        return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return PasswordHasher()


def check_new_password(password: object) -> str:
    if not isinstance(password, str) or not password:
        raise InvalidValue("password must not be empty")
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidValue(
            f"password must have at least {MIN_PASSWORD_CHARS} characters"
        )
    if not is_text(password):
        raise InvalidValue(
            "password contains characters that are not valid Unicode text"
        )
    if len(password) > MAX_PASSWORD_CHARS:
        raise InvalidValue(f"password is longer than {MAX_PASSWORD_CHARS} characters")
    return password


def verify_password(
    hasher: PasswordHasher, password_hash: str, password: object
) -> bool:
    """Return True when ``password`` matches ``password_hash``."""
    if not is_text(password, MAX_PASSWORD_CHARS):
        return False
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
