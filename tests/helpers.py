"""Shared steps for the tests: users, enrollment with a virtual phone, and a record of
every secret, code and password the tests handle, so that scans can look for them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pyotp

from core import admin, signin, totp
from core.context import Context
from core.signin import Status

START = 1_800_000_000  # 2027-01-15 08:00:00 UTC, the first second of a time step
PERIOD = 30

PASSWORDS = {
    "boss": "Boss-pass-4821",
    "boss2": "Second-boss-pass-77",
    "ann": "Ann-pass-7310",
    "sam@acme.test": "Sam-pass-2264",
    "rita": "Rita-pass-9035",
    "cory": "Cory-pass-5518",
}
PROFILES = {
    "boss": "master-admin",
    "ann": "admin",
    "sam@acme.test": "standard",
    "rita": "read-only",
    "cory": "customer",
}


@dataclass
class Seen:
    """Every secret, code and password that passed through a test."""

    secrets: set[str] = field(default_factory=set)
    raw_secrets: set[bytes] = field(default_factory=set)
    codes: set[str] = field(default_factory=set)
    passwords: set[str] = field(default_factory=lambda: set(PASSWORDS.values()))

    def add_secret(self, base32: str) -> None:
        self.secrets.add(base32)
        self.raw_secrets.add(totp.decode_secret(base32))

    def needles(self) -> list[bytes]:
        """Byte strings that must never appear in a log, an audit row or the database."""
        found: list[bytes] = []
        for secret in self.secrets:
            found += [secret.encode(), secret.lower().encode()]
        for raw in self.raw_secrets:
            found += [raw, raw.hex().encode()]
        found += [password.encode() for password in self.passwords]
        return found


SEEN = Seen()


def contains_code(text: bytes, code: str) -> bool:
    """Return True when ``code`` stands in ``text`` as a token of its own.

    A six-digit run inside a longer token (a random hex database name, a
    token hash, a timestamp) is chance, not a leaked code: about one in ten
    thousand runs would otherwise fail on it.
    """
    pattern = rb"(?<![0-9A-Za-z])" + code.encode() + rb"(?![0-9A-Za-z])"
    return re.search(pattern, text) is not None


def code_at(secret: str, now: int) -> str:
    """Compute a code with pyotp, an implementation independent of the core."""
    code = pyotp.TOTP(secret).at(now)
    SEEN.codes.add(code)
    return code


def add_acme(ctx: Context, two_factor: bool = True) -> str:
    """Create portal acme with one user of each profile; return the Master Admin's session."""
    admin.create_portal(ctx, "acme", "Acme Billing")
    admin.add_user(ctx, "acme", "boss", PASSWORDS["boss"], "master-admin")
    session = password_only(ctx, "boss")
    for username, profile in PROFILES.items():
        if username != "boss":
            admin.add_user(ctx, "acme", username, PASSWORDS[username], profile, session)
    if two_factor:
        admin.set_two_factor(ctx, session, "acme", True)
    return session


def password_only(ctx: Context, username: str, portal: str = "acme") -> str:
    result = signin.submit_password(ctx, portal, username, PASSWORDS[username])
    assert result.status == Status.SIGNED_IN, result
    return result.session


def start_enrollment(
    ctx: Context, username: str, portal: str = "acme"
) -> tuple[str, str]:
    """Pass the password step of a user who must enroll; return (challenge, base32 secret)."""
    result = signin.submit_password(ctx, portal, username, PASSWORDS[username])
    assert result.status == Status.ENROLLMENT_REQUIRED, result
    offer = signin.enrollment_offer(ctx, result.challenge)
    secret = pyotp.parse_uri(offer.uri).secret
    SEEN.add_secret(secret)
    return result.challenge, secret


def enroll(ctx: Context, username: str, portal: str = "acme") -> str:
    """Enroll a user with a code of the current step; return the base32 secret."""
    challenge, secret = start_enrollment(ctx, username, portal)
    result = signin.submit_code(ctx, challenge, code_at(secret, ctx.now()))
    assert result.status == Status.SIGNED_IN, result
    return secret


def code_challenge(ctx: Context, username: str, portal: str = "acme") -> str:
    """Pass the password step of an enrolled user; return the challenge for the code."""
    result = signin.submit_password(ctx, portal, username, PASSWORDS[username])
    assert result.status == Status.CODE_REQUIRED, result
    return result.challenge


OPERATOR = "Jo Ops"
OPERATOR_PASSWORD = "Operator-pass-6620"
SEEN.passwords.add(OPERATOR_PASSWORD)


def add_operator(ctx: Context, name: str = OPERATOR) -> str:
    """Add and confirm a support operator; return the base32 secret."""
    from core import operators

    offer = operators.add_operator(ctx, name, OPERATOR_PASSWORD)
    secret = pyotp.parse_uri(offer.uri).secret
    SEEN.add_secret(secret)
    result = operators.confirm_operator(ctx, name, code_at(secret, ctx.now()))
    assert result.status == operators.OperatorStatus.SIGNED_IN, result
    return secret


def operator_session(ctx: Context, secret: str, name: str = OPERATOR) -> str:
    """Sign the operator in with a code of a time step after every earlier one."""
    from core import operators

    ctx.clock.advance(PERIOD)
    result = operators.sign_in_operator(
        ctx, name, OPERATOR_PASSWORD, code_at(secret, ctx.now())
    )
    assert result.status == operators.OperatorStatus.SIGNED_IN, result
    return result.session
