"""Users, phones and a portal driver that runs the core's sign-in with invariant checks.

The phones compute codes with pyotp, an implementation separate from the
core's, from the secret in the enrollment's key URI, as an authenticator app
that scanned the QR code would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyotp
from sqlmodel import Session, select

from core import admin, signin, totp
from core.context import Context
from core.models import Enrollment, EnrollmentStatus, Portal, User, UserKind
from core.signin import SignInResult, Status
from simulations.errors import SimulationError
from simulations.invariants import (
    ACCEPTED_IS_ACTIVE,
    InvariantChecker,
    user_snapshot,
)

PERIOD = totp.DEFAULT_PERIOD
DIGITS = totp.DEFAULT_DIGITS
OWNER = "owner"
# Renew the owner's session this long before it expires, so that an admin
# action never runs on a session that ends during it.
SESSION_MARGIN_SECONDS = 60


class PhoneEntry(pyotp.TOTP):
    """One authenticator entry: pyotp's TOTP with the secret decoded once, not per code."""

    def byte_secret(self) -> bytes:
        cached = self.__dict__.get("_secret_bytes")
        if cached is None:
            cached = self._secret_bytes = super().byte_secret()
        return cached


@dataclass
class Phone:
    """A user's authenticator app: the newest entry, and older entries that stay on the phone."""

    current: PhoneEntry | None = None
    older: list[PhoneEntry] = field(default_factory=list)

    def scan(self, secret: str) -> None:
        """Add an entry for ``secret``, unless it is the current one (the same QR code again)."""
        if self.current is not None and self.current.secret == secret:
            return
        if self.current is not None:
            self.older.append(self.current)
        self.current = PhoneEntry(secret)

    def code(self, now: float, offset_seconds: float = 0) -> tuple[str, int]:
        """Return the current entry's code and its time step on a phone ``offset_seconds`` ahead."""
        if self.current is None:
            raise SimulationError("the phone has no authenticator entry")
        step = int((now + offset_seconds) // PERIOD)
        return self.current.generate_otp(step), step


def code_matches_any(entry: pyotp.TOTP, code: str, steps: range) -> bool:
    """Return whether ``code`` equals the entry's code at any of ``steps``."""
    return any(entry.generate_otp(step) == code for step in steps)


def user_ids(ctx: Context, portal_slug: str) -> dict[str, int]:
    """Return the id of every user of a portal, by username."""
    with Session(ctx.reader) as session:
        rows = session.exec(
            select(User.username, User.id)
            .join(Portal, Portal.id == User.portal_id)
            .where(Portal.slug == portal_slug)
        ).all()
    return dict(rows)


def active_enrollment(ctx: Context, user_id: int) -> tuple[int, int] | None:
    """Return (enrollment id, last accepted step) of the user's active enrollment."""
    with Session(ctx.reader) as session:
        row = session.exec(
            select(Enrollment.id, Enrollment.last_step).where(
                Enrollment.user_id == user_id,
                Enrollment.status == EnrollmentStatus.ACTIVE,
            )
        ).first()
    return None if row is None else (row[0], row[1])


class PortalDriver:
    """Run sign-ins and admin actions on one portal through the core, checking invariants.

    The driver stores what the simulation tracks independently of the
    database: each user's kind, password and phone, and whether the switch is
    on. ``ctx`` arguments let a scenario use another app instance on the same
    database.
    """

    def __init__(self, ctx: Context, portal: str, checker: InvariantChecker) -> None:
        self.ctx = ctx
        self.portal = portal
        self.checker = checker
        self.passwords: dict[str, str] = {}
        self.kinds: dict[str, str] = {}
        self.phones: dict[str, Phone] = {}
        self.ids: dict[str, int] = {}
        self.switch_on = admin.portal_settings(ctx, portal).two_factor_enabled
        self._owner_session: str | None = None
        self._owner_session_ends = 0

    def know_user(self, username: str, password: str, kind: str) -> None:
        """Record a user that already exists in the portal."""
        self.passwords[username] = password
        self.kinds[username] = kind
        self.phones.setdefault(username, Phone())
        self.ids = user_ids(self.ctx, self.portal)

    def add_users(self, users: list[tuple[str, str, str]]) -> None:
        """Add users given as (username, password, profile) with the owner's session."""
        session = self.owner_session()
        for username, password, profile in users:
            admin.add_user(self.ctx, self.portal, username, password, profile, session)
            kind = UserKind.CUSTOMER if profile == "customer" else UserKind.INTERNAL
            self.passwords[username] = password
            self.kinds[username] = kind
            self.phones[username] = Phone()
        self.ids = user_ids(self.ctx, self.portal)

    def submit_password(
        self, username: str, ctx: Context | None = None
    ) -> SignInResult:
        ctx = ctx or self.ctx
        result = signin.submit_password(
            ctx, self.portal, username, self.passwords[username]
        )
        kind = self.kinds[username]
        self.checker.password_step(username, kind, self.switch_on, result)
        if result.status == Status.SIGNED_IN:
            self.checker.session_opened(
                ctx, username, kind, self.switch_on, result.session
            )
        return result

    def scan_offer(
        self, username: str, challenge: str, ctx: Context | None = None
    ) -> str:
        """Show the enrollment offer, scan its QR code on the user's phone; return the secret."""
        offer = signin.enrollment_offer(ctx or self.ctx, challenge)
        secret = pyotp.parse_uri(offer.uri).secret
        self.phones[username].scan(secret)
        return secret

    def submit_code(
        self, username: str, challenge: str, code: str, ctx: Context | None = None
    ) -> SignInResult:
        """Submit a code and, when it signs in, check the accepted step and the session."""
        ctx = ctx or self.ctx
        result = signin.submit_code(ctx, challenge, code)
        if result.status == Status.SIGNED_IN:
            self.record_acceptance(username, ctx)
            self.checker.session_opened(
                ctx, username, self.kinds[username], self.switch_on, result.session
            )
        return result

    def record_acceptance(self, username: str, ctx: Context | None = None) -> None:
        """Read the step the core just accepted for ``username`` and check it."""
        found = active_enrollment(ctx or self.ctx, self.ids[username])
        if found is None:
            self.checker.fail(ACCEPTED_IS_ACTIVE, username, enrollment=None)
            return
        enrollment_id, last_step = found
        self.checker.step_accepted(username, enrollment_id, last_step)

    def sign_in(self, username: str) -> SignInResult:
        """Sign a user in now with the password and the phone's code, enrolling if asked."""
        result = self.submit_password(username)
        if result.status == Status.ENROLLMENT_REQUIRED:
            self.scan_offer(username, result.challenge)
        if result.status in (Status.ENROLLMENT_REQUIRED, Status.CODE_REQUIRED):
            code, _ = self.phones[username].code(self.ctx.now())
            result = self.submit_code(username, result.challenge, code)
        return result

    def owner_session(self) -> str:
        """Return a live session of the owner, signing in again when it is about to end."""
        now = self.ctx.now()
        if self._owner_session is None or now >= self._owner_session_ends:
            result = self.sign_in(OWNER)
            if result.status != Status.SIGNED_IN:
                raise SimulationError(
                    f"the owner could not sign in: {result.status} ({result.reason})"
                )
            self._owner_session = result.session
            self._owner_session_ends = (
                now + signin.SESSION_SECONDS - SESSION_MARGIN_SECONDS
            )
        return self._owner_session

    def set_switch(self, enabled: bool) -> admin.SwitchResult:
        outcome = admin.set_two_factor(
            self.ctx, self.owner_session(), self.portal, enabled
        )
        self.switch_on = enabled
        return outcome

    def reset(self, target: str, reason: str) -> admin.ResetResult:
        """Reset one user's enrollment and check that no other user changed."""
        session = self.owner_session()
        before = user_snapshot(self.ctx, self.portal)
        outcome = admin.reset_enrollment(self.ctx, session, self.portal, target, reason)
        after = user_snapshot(self.ctx, self.portal)
        self.checker.reset_done(target, before, after)
        return outcome
