"""RFC 6238 Appendix B: TOTP values for SHA1, SHA256 and SHA512 at six times."""

import pyotp
import pytest

from core import totp

# Appendix B seeds: the ASCII string "1234567890" repeated to the digest's key length.
SEEDS = {
    "sha1": b"12345678901234567890",
    "sha256": b"12345678901234567890123456789012",
    "sha512": b"1234567890123456789012345678901234567890123456789012345678901234",
}

VECTORS = [
    (59, "sha1", "94287082"),
    (59, "sha256", "46119246"),
    (59, "sha512", "90693936"),
    (1111111109, "sha1", "07081804"),
    (1111111109, "sha256", "68084774"),
    (1111111109, "sha512", "25091201"),
    (1111111111, "sha1", "14050471"),
    (1111111111, "sha256", "67062674"),
    (1111111111, "sha512", "99943326"),
    (1234567890, "sha1", "89005924"),
    (1234567890, "sha256", "91819424"),
    (1234567890, "sha512", "93441116"),
    (2000000000, "sha1", "69279037"),
    (2000000000, "sha256", "90698825"),
    (2000000000, "sha512", "38618901"),
    (20000000000, "sha1", "65353130"),
    (20000000000, "sha256", "77737706"),
    (20000000000, "sha512", "47863826"),
]


@pytest.mark.parametrize(("now", "algorithm", "expected"), VECTORS)
def test_rfc6238_vector(now, algorithm, expected):
    code = totp.totp(SEEDS[algorithm], now, digits=8, algorithm=algorithm)
    assert code == expected, (
        f"T={now} {algorithm}: got {code}, RFC 6238 gives {expected}"
    )


def test_six_digit_codes_agree_with_pyotp():
    secret = totp.generate_secret()
    base32 = totp.encode_secret(secret)
    for now in (0, 29, 30, 59, 1_800_000_000, 1_800_000_029, 4_102_444_800):
        assert totp.totp(secret, now) == pyotp.TOTP(base32).at(now), f"T={now}"


def test_secret_is_160_random_bits():
    first, second = totp.generate_secret(), totp.generate_secret()
    assert len(first) == 20
    assert first != second
    assert len(totp.encode_secret(first)) == 32
    assert "=" not in totp.encode_secret(first)


def test_time_step_edges():
    assert totp.time_step(0) == 0
    assert totp.time_step(29) == 0
    assert totp.time_step(30) == 1
    assert totp.time_step(1_800_000_000) == 60_000_000
