"""HOTP (RFC 4226) and TOTP (RFC 6238) arithmetic, with no storage or policy.

Times are integer Unix seconds. A time step is ``(now - t0) // period``.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import struct

DEFAULT_DIGITS = 6
DEFAULT_PERIOD = 30
DEFAULT_ALGORITHM = "sha1"
SECRET_BYTES = 20  # 160 bits, the length RFC 4226 recommends

ALGORITHMS = ("sha1", "sha256", "sha512")


def generate_secret() -> bytes:
    """Return a new random secret of 160 bits from the operating system's CSPRNG."""
    return secrets.token_bytes(SECRET_BYTES)


def encode_secret(secret: bytes) -> str:
    """Encode a secret as upper-case base32 without padding, as key URIs carry it."""
    return base64.b32encode(secret).decode("ascii").rstrip("=")


def decode_secret(text: str) -> bytes:
    """Decode base32 with or without padding, spaces or lower case."""
    cleaned = text.replace(" ", "").upper()
    padding = "=" * (-len(cleaned) % 8)
    return base64.b32decode(cleaned + padding)


def hotp(
    secret: bytes,
    counter: int,
    digits: int = DEFAULT_DIGITS,
    algorithm: str = DEFAULT_ALGORITHM,
) -> str:
    """Compute the HOTP value of ``counter`` as a zero-padded decimal string."""
    if algorithm not in ALGORITHMS:
        raise ValueError(
            f"algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}"
        )
    digest = hmac.digest(secret, struct.pack(">Q", counter), algorithm)

    # Dynamic truncation: the low nibble of the last byte picks four bytes.
    offset = digest[-1] & 0x0F
    (binary,) = struct.unpack(">I", digest[offset : offset + 4])
    value = (binary & 0x7FFFFFFF) % (10**digits)
    return str(value).zfill(digits)


def time_step(now: int, period: int = DEFAULT_PERIOD, t0: int = 0) -> int:
    """Return the time step that contains ``now``."""
    return (now - t0) // period


def totp(
    secret: bytes,
    now: int,
    digits: int = DEFAULT_DIGITS,
    period: int = DEFAULT_PERIOD,
    algorithm: str = DEFAULT_ALGORITHM,
) -> str:
    """Compute the TOTP code valid at ``now``."""
    return hotp(secret, time_step(now, period), digits, algorithm)


def codes_match(expected: str, given: str) -> bool:
    """Compare two codes in constant time."""
    return hmac.compare_digest(expected.encode("ascii"), given.encode("ascii"))
