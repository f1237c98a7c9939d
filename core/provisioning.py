"""Key URIs, QR codes and grouped secrets that an authenticator app reads.

The URI follows the Key Uri Format that Google Authenticator defined and that
Duo Mobile, Microsoft Authenticator and Authy also read:
``otpauth://totp/ISSUER:ACCOUNT?secret=BASE32&issuer=ISSUER``. Parameters that
equal the defaults (SHA1, 6 digits, 30 s) are left out to keep the QR small.
"""

from __future__ import annotations

import io
from urllib.parse import quote

import qrcode
import qrcode.constants

from core import totp
from core.errors import InvalidValue

MAX_LABEL_CHARS = 100


def check_label(kind: str, value: str) -> str:
    """Check an issuer or account name and return it; raise InvalidValue when unusable."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(f"{kind} must not be empty")
    if len(value) > MAX_LABEL_CHARS:
        raise InvalidValue(
            f"{kind} is {len(value)} characters long; the maximum is {MAX_LABEL_CHARS}"
        )
    if ":" in value:
        raise InvalidValue(
            f"{kind} {value!r} contains ':', which authenticator apps read as a separator"
        )
    if any(not ch.isprintable() for ch in value):
        raise InvalidValue(f"{kind} {value!r} contains control or invisible characters")
    return value


def key_uri(
    secret: bytes,
    issuer: str,
    account: str,
    digits: int = totp.DEFAULT_DIGITS,
    period: int = totp.DEFAULT_PERIOD,
    algorithm: str = totp.DEFAULT_ALGORITHM,
) -> str:
    """Build the ``otpauth://totp/`` URI for a secret."""
    check_label("issuer", issuer)
    check_label("account name", account)

    label = f"{quote(issuer, safe='')}:{quote(account, safe='')}"
    query = [f"secret={totp.encode_secret(secret)}", f"issuer={quote(issuer, safe='')}"]
    if algorithm != totp.DEFAULT_ALGORITHM:
        query.append(f"algorithm={algorithm.upper()}")
    if digits != totp.DEFAULT_DIGITS:
        query.append(f"digits={digits}")
    if period != totp.DEFAULT_PERIOD:
        query.append(f"period={period}")
    return f"otpauth://totp/{label}?{'&'.join(query)}"


def group_secret(secret: bytes) -> str:
    """Format a secret as base32 in groups of four characters, for typing by hand."""
    text = totp.encode_secret(secret)
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def _qr(uri: str) -> qrcode.QRCode:
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    code.add_data(uri)
    code.make(fit=True)
    return code


def qr_png(uri: str, box_size: int = 8) -> bytes:
    """Render the URI as a QR code in PNG format."""
    code = _qr(uri)
    code.box_size = box_size
    buffer = io.BytesIO()
    code.make_image().save(buffer, format="PNG")
    return buffer.getvalue()


def qr_text(uri: str) -> str:
    """Render the URI as a QR code of Unicode half blocks for a terminal."""
    buffer = io.StringIO()
    _qr(uri).print_ascii(out=buffer, invert=True)
    return buffer.getvalue()
