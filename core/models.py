"""Database tables, and public views of them without secret columns.

Times are integer Unix seconds. Secrets are stored only as Fernet tokens;
session and sign-in tokens only as SHA-256 hashes; passwords only as argon2id hashes.
"""

from __future__ import annotations

import enum

from sqlalchemy import Column, Index, LargeBinary, UniqueConstraint, text
from sqlmodel import Field, SQLModel


class UserKind(enum.StrEnum):
    INTERNAL = "internal"
    CUSTOMER = "customer"


class Profile(enum.StrEnum):
    """Internal profile of a staff member; customers have none."""

    MASTER_ADMIN = "master_admin"
    ADMIN = "admin"
    STANDARD = "standard"
    READ_ONLY = "read_only"


class EnrollmentStatus(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


class ChallengeKind(enum.StrEnum):
    """The step that a sign-in which passed the password still needs."""

    ENROLLMENT = "enrollment"
    CODE = "code"


class ChallengeState(enum.StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class Portal(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(unique=True, max_length=63)
    name: str = Field(max_length=100)
    created_at: int


class SecuritySettings(SQLModel, table=True):
    """Per-portal two-factor settings.

    ``generation`` grows each time two-factor authentication is turned on, and
    an enrollment counts only while its generation equals the portal's.
    """

    __tablename__ = "security_settings"

    portal_id: int = Field(primary_key=True, foreign_key="portal.id")
    two_factor_enabled: bool = False
    window: int = 1
    drift_limit: int = 3
    generation: int = 0
    changed_at: int
    changed_by: str | None = Field(default=None, max_length=150)


class User(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("portal_id", "username"),)

    id: int | None = Field(default=None, primary_key=True)
    portal_id: int = Field(foreign_key="portal.id", index=True)
    username: str = Field(max_length=150)
    kind: str = Field(max_length=20)  # a UserKind value
    profile: str | None = Field(default=None, max_length=20)  # a Profile value
    password_hash: str = Field(max_length=200)
    active: bool = True
    created_at: int


class Enrollment(SQLModel, table=True):
    """A user's authenticator secret and its replay and drift state."""

    __table_args__ = (
        # At most one pending or active enrollment per user, even under races.
        Index(
            "ix_enrollment_one_live",
            "user_id",
            unique=True,
            sqlite_where=text("status IN ('pending', 'active')"),
            postgresql_where=text("status IN ('pending', 'active')"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    portal_id: int = Field(foreign_key="portal.id", index=True)
    generation: int
    status: str = Field(max_length=20)  # an EnrollmentStatus value
    secret_encrypted: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: int
    expires_at: int  # when a pending enrollment lapses
    confirmed_at: int | None = None
    ended_at: int | None = None  # when it was revoked or expired
    last_step: int = -1  # last accepted time step; -1 before the first code
    drift: int = 0  # time steps between the phone's clock and ours
    device_name: str | None = Field(default=None, max_length=100)


class CodeThrottle(SQLModel, table=True):
    """Consecutive wrong codes of one user and the lock they caused."""

    __tablename__ = "code_throttle"

    user_id: int = Field(primary_key=True, foreign_key="user.id")
    failures: int = 0
    locked_until: int = 0  # 0 when not locked
    last_failure_at: int | None = None


class SignInChallenge(SQLModel, table=True):
    """A sign-in that passed the password and waits for a code; it grants nothing."""

    __tablename__ = "sign_in_challenge"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(unique=True, max_length=64)
    user_id: int = Field(foreign_key="user.id", index=True)
    kind: str = Field(max_length=20)  # a ChallengeKind value
    state: str = Field(default="open", max_length=20)  # a ChallengeState value
    created_at: int
    expires_at: int


class AuthSession(SQLModel, table=True):
    """A completed sign-in."""

    __tablename__ = "auth_session"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(unique=True, max_length=64)
    user_id: int = Field(foreign_key="user.id", index=True)
    with_code: bool
    created_at: int
    expires_at: int
    ended_at: int | None = None


class SupportOperator(SQLModel, table=True):
    """Vendor staff who perform guided resets; not a portal user."""

    __tablename__ = "support_operator"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=100)
    password_hash: str = Field(max_length=200)
    secret_encrypted: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    last_step: int = -1  # last accepted time step; -1 before the first code
    drift: int = 0
    failures: int = 0  # consecutive wrong codes
    locked_until: int = 0  # 0 when not locked
    active: bool = True
    created_at: int
    confirmed_at: int | None = None  # when the first code confirmed the authenticator


class OperatorSession(SQLModel, table=True):
    """A support operator's completed sign-in (password and code)."""

    __tablename__ = "operator_session"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(unique=True, max_length=64)
    operator_id: int = Field(foreign_key="support_operator.id", index=True)
    created_at: int
    expires_at: int
    ended_at: int | None = None


class AuditEvent(SQLModel, table=True):
    """One security event. Holds names, outcomes and reasons, never a secret or code."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: int = Field(index=True)
    portal_id: int | None = Field(default=None, index=True)
    portal_slug: str | None = Field(default=None, max_length=63)
    actor_kind: str = Field(max_length=20)  # user, operator or system
    actor: str | None = Field(default=None, max_length=150)
    target: str | None = Field(default=None, max_length=150)
    event: str = Field(index=True, max_length=40)
    outcome: str = Field(max_length=20)
    reason: str | None = Field(default=None, max_length=200)
    detail: str | None = Field(default=None, max_length=2000)  # JSON object
