"""A sandbox portal in its own in-memory database, with a clock that moves only on request.

The flow explorer and the simulations use it to try sign-ins, replays, the
switch and resets without touching real data. Its virtual authenticator reads
the secrets straight from the sandbox database, which no real deployment
allows, and computes codes with pyotp, an implementation separate from the core's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyotp
from cryptography.fernet import Fernet
from sqlmodel import Session, select

from core import admin, signin, totp
from core.clock import ManualClock
from core.context import Context, open_context
from core.models import Enrollment, SupportOperator, User
from core.signin import LIVE_STATUSES

SANDBOX_PORTAL = "sandbox"
SANDBOX_PORTAL_NAME = "Sandbox Billing"
SANDBOX_START = (
    1_800_000_000  # 2027-01-15 08:00:00 UTC, the first second of a time step
)

SANDBOX_ACCOUNTS = {
    "owner": ("owner-sandbox-pass", "master-admin"),
    "alex": ("alex-sandbox-pass", "standard"),
    "casey": ("casey-sandbox-pass", "customer"),
}


@dataclass
class Sandbox:
    """A core Context on a private in-memory SQLite database, plus a virtual phone."""

    ctx: Context
    clock: ManualClock
    passwords: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, start: int = SANDBOX_START, fast_hashing: bool = True) -> Sandbox:
        """Create the sandbox portal with a Master Admin, a standard user and a customer.

        Two-factor authentication starts off, as for a new portal.
        """
        clock = ManualClock(start)
        ctx = open_context(
            "sqlite://",
            clock=clock,
            key=Fernet.generate_key(),
            fast_hashing=fast_hashing,
        )
        sandbox = cls(ctx, clock)
        admin.create_portal(ctx, SANDBOX_PORTAL, SANDBOX_PORTAL_NAME)
        owner_password, _ = SANDBOX_ACCOUNTS["owner"]
        admin.add_user(ctx, SANDBOX_PORTAL, "owner", owner_password, "master-admin")
        sandbox.passwords["owner"] = owner_password
        owner = sandbox.sign_in("owner").session
        for username, (password, profile) in SANDBOX_ACCOUNTS.items():
            if username != "owner":
                sandbox.add_user(username, password, profile, owner)
        signin.sign_out(ctx, owner)
        return sandbox

    def add_user(
        self, username: str, password: str, profile: str, session: str
    ) -> None:
        """Add a sandbox user; ``session`` is a Master Admin's session token."""
        admin.add_user(self.ctx, SANDBOX_PORTAL, username, password, profile, session)
        self.passwords[username] = password

    def sign_in(self, username: str) -> signin.SignInResult:
        """Run the password step for a sandbox user with their password."""
        return signin.submit_password(
            self.ctx, SANDBOX_PORTAL, username, self.passwords[username]
        )

    def secret_of(self, username: str) -> str | None:
        """Return the base32 secret of the user's pending or active enrollment, if any."""
        with Session(self.ctx.reader) as session:
            token = session.exec(
                select(Enrollment.secret_encrypted)
                .join(User, User.id == Enrollment.user_id)
                .where(User.username == username, Enrollment.status.in_(LIVE_STATUSES))
            ).first()
        if token is None:
            return None
        return totp.encode_secret(self.ctx.box.decrypt(token))

    def operator_secret(self, name: str) -> str | None:
        with Session(self.ctx.reader) as session:
            token = session.exec(
                select(SupportOperator.secret_encrypted).where(
                    SupportOperator.name == name
                )
            ).first()
        return (
            None if token is None else totp.encode_secret(self.ctx.box.decrypt(token))
        )

    def phone_code(self, username: str, phone_offset: int = 0) -> str | None:
        """Return the code the user's authenticator shows now, on a phone whose clock
        is ``phone_offset`` seconds ahead (negative: behind); None without a secret."""
        secret = self.secret_of(username)
        if secret is None:
            return None
        return pyotp.TOTP(secret).at(self.clock.now() + phone_offset)

    def close(self) -> None:
        self.ctx.close()
