"""The sign-in flow: password step, enrollment, code step, sessions.

``submit_password`` returns one of five statuses. A sign-in that passed the
password but still needs a code (or an enrollment) is a challenge: it grants
nothing, and it expires after ``CHALLENGE_SECONDS``.
"""

from __future__ import annotations

import enum
import functools
import logging
from dataclasses import dataclass

from argon2 import PasswordHasher
from sqlalchemy import Connection, insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core import audit, messages, provisioning, totp
from core.codes import FormatProblem
from core.context import Context
from core.errors import NotSignedIn
from core.models import (
    AuthSession,
    ChallengeKind,
    ChallengeState,
    CodeThrottle,
    Enrollment,
    EnrollmentStatus,
    Portal,
    SecuritySettings,
    SignInChallenge,
    User,
    UserKind,
)
from core.passwords import verify_password
from core.text import is_text
from core.tokens import hash_token, new_token
from core.verification import CodeCheck, Rejection, verify_code

log = logging.getLogger(__name__)

CHALLENGE_SECONDS = 5 * 60
ENROLLMENT_SECONDS = 10 * 60
SESSION_SECONDS = 8 * 60 * 60

LIVE_STATUSES = (EnrollmentStatus.PENDING.value, EnrollmentStatus.ACTIVE.value)


class Status(enum.StrEnum):
    SIGNED_IN = "signed_in"
    ENROLLMENT_REQUIRED = "enrollment_required"
    CODE_REQUIRED = "code_required"
    REJECTED = "rejected"
    LOCKED = "locked"


class Reason(enum.StrEnum):
    INVALID_CREDENTIALS = "invalid_credentials"
    ACCOUNT_DISABLED = "account_disabled"
    SIGN_IN_EXPIRED = "sign_in_expired"
    ENROLLMENT_EXPIRED = "enrollment_expired"
    ENROLLMENT_CHANGED = "enrollment_changed"
    LOCKED = "locked"
    BAD_FORMAT = "bad_format"
    WRONG_CODE = "wrong_code"
    REPLAY = "replay"


@dataclass(frozen=True)
class SignInResult:
    """The outcome of a sign-in step.

    ``challenge`` is set for ENROLLMENT_REQUIRED and CODE_REQUIRED (and stays
    valid after a wrong code); ``session`` only for SIGNED_IN.
    """

    status: Status
    message: str
    reason: Reason | None = None
    challenge: str | None = None
    session: str | None = None
    locked_until: int | None = None
    failures: int = 0
    format_problem: FormatProblem | None = None


@dataclass(frozen=True)
class EnrollmentOffer:
    """The pending secret as the enrollment screen shows it: URI, QR and grouped key."""

    uri: str
    grouped_secret: str
    issuer: str
    account: str
    expires_at: int

    def qr_png(self) -> bytes:
        return provisioning.qr_png(self.uri)

    def qr_text(self) -> str:
        return provisioning.qr_text(self.uri)


@dataclass(frozen=True)
class SignedInUser:
    """The user behind a session, without any secret."""

    user_id: int
    username: str
    kind: str
    profile: str | None
    portal_id: int
    portal_slug: str
    portal_name: str
    with_code: bool
    expires_at: int


# A hash to verify against when the user does not exist, so that a wrong
# username takes as long as a wrong password.
_DUMMY_PASSWORD = "not-a-real-password"


def submit_password(
    ctx: Context, portal_slug: str, username: str, password: str
) -> SignInResult:
    """Check the password and return what the sign-in needs next."""
    now = ctx.now()
    if not (is_text(portal_slug, 200) and is_text(username, 200)):
        verify_password(ctx.hasher, _dummy_hash(ctx.hasher), password)
        return _result(Status.REJECTED, Reason.INVALID_CREDENTIALS, now)

    with Session(ctx.reader) as session:
        row = session.exec(
            select(Portal, User)
            .join(User, User.portal_id == Portal.id)
            .where(Portal.slug == portal_slug, User.username == username)
        ).first()

    # The hash runs outside any transaction, so a slow argon2 check holds no lock.
    if row is None:
        verify_password(ctx.hasher, _dummy_hash(ctx.hasher), password)
        return _reject_unknown_user(ctx, portal_slug, now)
    portal, user = row
    password_ok = verify_password(ctx.hasher, user.password_hash, password)

    where = {
        "portal_id": portal.id,
        "portal_slug": portal.slug,
        "target": user.username,
    }
    actor = audit.Actor.user(user.username)
    with Session(ctx.engine) as session, session.begin():
        connection = session.connection()
        settings = session.exec(
            select(SecuritySettings).where(SecuritySettings.portal_id == portal.id)
        ).one()
        throttle = session.exec(
            select(CodeThrottle.failures, CodeThrottle.locked_until).where(
                CodeThrottle.user_id == user.id
            )
        ).one()
        needs_code = user.kind == UserKind.INTERNAL and settings.two_factor_enabled

        # While code entry is locked the result is "locked" whatever the password,
        # so a locked account reveals nothing about password guesses.
        if needs_code and throttle.locked_until > now:
            audit.record(
                connection,
                now,
                audit.Event.CODE_REJECTED,
                audit.Outcome.REJECTED,
                actor=actor,
                reason=Rejection.LOCKED,
                detail={"locked_until": throttle.locked_until, "step": "password"},
                **where,
            )
            return _result(
                Status.LOCKED,
                Reason.LOCKED,
                now,
                locked_until=throttle.locked_until,
                failures=throttle.failures,
            )

        if not password_ok or not user.active:
            reason = (
                Reason.INVALID_CREDENTIALS
                if not password_ok
                else Reason.ACCOUNT_DISABLED
            )
            audit.record(
                connection,
                now,
                audit.Event.PASSWORD_REJECTED,
                audit.Outcome.REJECTED,
                actor=actor,
                reason=str(reason),
                **where,
            )
            return _result(Status.REJECTED, reason, now)

        if not needs_code:
            token = _open_session(connection, user.id, now, with_code=False)
            audit.record(
                connection,
                now,
                audit.Event.SIGNED_IN,
                audit.Outcome.SUCCESS,
                actor=actor,
                reason="password only",
                **where,
            )
            return SignInResult(Status.SIGNED_IN, "Signed in.", session=token)

        enrollment = _live_enrollment(session, user.id)
        if enrollment is not None and enrollment.generation != settings.generation:
            _end_enrollment(connection, enrollment.id, EnrollmentStatus.REVOKED, now)
            enrollment = None

        if enrollment is not None and enrollment.status == EnrollmentStatus.ACTIVE:
            token = _open_challenge(connection, user.id, ChallengeKind.CODE, now)
            return SignInResult(
                Status.CODE_REQUIRED,
                "Enter the code from your authenticator app.",
                challenge=token,
                failures=throttle.failures,
            )

        _ensure_pending_enrollment(
            ctx, connection, enrollment, user, settings, now, where
        )
        token = _open_challenge(connection, user.id, ChallengeKind.ENROLLMENT, now)
        return SignInResult(
            Status.ENROLLMENT_REQUIRED,
            "Two-factor authentication is required. Scan the QR code with your "
            "authenticator app, then enter the first code it shows.",
            challenge=token,
            failures=throttle.failures,
        )


def enrollment_offer(ctx: Context, challenge: str) -> EnrollmentOffer:
    """Return the pending secret as URI, QR and grouped text; the same on every call."""
    if not isinstance(challenge, str) or not challenge:
        raise NotSignedIn("this sign-in has no pending enrollment; sign in again")
    now = ctx.now()
    with Session(ctx.reader) as session:
        row = session.exec(
            select(Enrollment, User, Portal)
            .join(SignInChallenge, SignInChallenge.user_id == Enrollment.user_id)
            .join(User, User.id == Enrollment.user_id)
            .join(Portal, Portal.id == User.portal_id)
            .where(
                SignInChallenge.token_hash == hash_token(challenge),
                SignInChallenge.kind == ChallengeKind.ENROLLMENT,
                SignInChallenge.state == ChallengeState.OPEN,
                SignInChallenge.expires_at > now,
                Enrollment.status == EnrollmentStatus.PENDING,
                Enrollment.expires_at > now,
            )
        ).first()
    if row is None:
        raise NotSignedIn(
            "this sign-in has no pending enrollment any more; sign in again"
        )
    enrollment, user, portal = row
    secret = ctx.box.decrypt(enrollment.secret_encrypted)
    return EnrollmentOffer(
        uri=provisioning.key_uri(secret, portal.name, user.username),
        grouped_secret=provisioning.group_secret(secret),
        issuer=portal.name,
        account=user.username,
        expires_at=enrollment.expires_at,
    )


class _ChallengeTaken(Exception):
    pass


def submit_code(ctx: Context, challenge: str, code: object) -> SignInResult:
    """Check a code for an open challenge: confirm the enrollment or finish the sign-in."""
    now = ctx.now()
    if not isinstance(challenge, str) or not challenge:
        return _result(Status.REJECTED, Reason.SIGN_IN_EXPIRED, now)
    try:
        return _submit_code(ctx, challenge, code, now)
    except _ChallengeTaken as taken:
        log.info("challenge %s was completed by a concurrent request; undone", taken)
        return _result(Status.REJECTED, Reason.SIGN_IN_EXPIRED, now)


def _submit_code(ctx: Context, challenge: str, code: object, now: int) -> SignInResult:
    with Session(ctx.engine) as session, session.begin():
        connection = session.connection()
        row = session.exec(
            select(SignInChallenge, User, Portal, SecuritySettings, CodeThrottle)
            .join(User, User.id == SignInChallenge.user_id)
            .join(Portal, Portal.id == User.portal_id)
            .join(SecuritySettings, SecuritySettings.portal_id == Portal.id)
            .join(CodeThrottle, CodeThrottle.user_id == User.id)
            .where(SignInChallenge.token_hash == hash_token(challenge))
            # Checks of one user's codes queue on the throttle row, so the lock
            # check reads every earlier failure (SQLite queues on BEGIN IMMEDIATE).
            .with_for_update(of=CodeThrottle)
        ).first()
        if row is None:
            return _result(Status.REJECTED, Reason.SIGN_IN_EXPIRED, now)
        found, user, portal, settings, throttle = row
        where = {
            "portal_id": portal.id,
            "portal_slug": portal.slug,
            "target": user.username,
        }
        if (
            found.state != ChallengeState.OPEN
            or found.expires_at <= now
            or not user.active
        ):
            # Not counted as a wrong code: no code was checked.
            audit.record(
                session.connection(),
                now,
                audit.Event.CODE_REJECTED,
                audit.Outcome.REJECTED,
                actor=audit.Actor.user(user.username),
                reason=Reason.SIGN_IN_EXPIRED,
                detail={"challenge_state": found.state},
                **where,
            )
            return _result(Status.REJECTED, Reason.SIGN_IN_EXPIRED, now)

        enrolling = found.kind == ChallengeKind.ENROLLMENT
        enrollment = _live_enrollment(session, user.id)
        expected = EnrollmentStatus.PENDING if enrolling else EnrollmentStatus.ACTIVE
        if (
            not settings.two_factor_enabled
            or enrollment is None
            or enrollment.status != expected
            or enrollment.generation != settings.generation
        ):
            _cancel_challenge(connection, found.id)
            return _result(Status.REJECTED, Reason.ENROLLMENT_CHANGED, now)

        if enrolling and enrollment.expires_at <= now:
            _end_enrollment(connection, enrollment.id, EnrollmentStatus.EXPIRED, now)
            _cancel_challenge(connection, found.id)
            audit.record(
                connection,
                now,
                audit.Event.ENROLLMENT_EXPIRED,
                audit.Outcome.REJECTED,
                actor=audit.Actor.user(user.username),
                **where,
            )
            return _result(Status.REJECTED, Reason.ENROLLMENT_EXPIRED, now)

        check = CodeCheck(
            enrollment_id=enrollment.id,
            user_id=user.id,
            expected_status=expected,
            secret=ctx.box.decrypt(enrollment.secret_encrypted),
            last_step=enrollment.last_step,
            drift=enrollment.drift,
            window=settings.window,
            drift_limit=settings.drift_limit,
            failures=throttle.failures,
            locked_until=throttle.locked_until,
        )
        verdict = verify_code(
            connection,
            check,
            code,
            now,
            {"actor": audit.Actor.user(user.username), **where},
            activate=enrolling,
        )
        if not verdict.accepted:
            status = Status.LOCKED if verdict.locked_until > now else Status.REJECTED
            reason = (
                Reason.LOCKED if status == Status.LOCKED else Reason(verdict.rejection)
            )
            return _result(
                status,
                reason,
                now,
                challenge=challenge,
                locked_until=verdict.locked_until or None,
                failures=verdict.failures,
                format_problem=verdict.format_problem,
            )

        claimed = connection.execute(
            update(SignInChallenge)
            .where(
                SignInChallenge.id == found.id,
                SignInChallenge.state == ChallengeState.OPEN,
            )
            .values(state=ChallengeState.COMPLETED)
        ).rowcount
        if claimed != 1:
            # The same challenge was completed by a concurrent request: undo this one.
            raise _ChallengeTaken(found.id)

        token = _open_session(connection, user.id, now, with_code=True)
        audit.record(
            connection,
            now,
            audit.Event.SIGNED_IN,
            audit.Outcome.SUCCESS,
            actor=audit.Actor.user(user.username),
            reason="password and code",
            **where,
        )
        return SignInResult(Status.SIGNED_IN, "Signed in.", session=token)


def current_user(ctx: Context, session_token: str | None) -> SignedInUser:
    """Return the user of a live session; raise NotSignedIn otherwise."""
    with Session(ctx.reader) as session:
        return signed_in_user(session, session_token, ctx.now())


def signed_in_user(
    session: Session, session_token: str | None, now: int
) -> SignedInUser:
    """Return the user of a live session, read through ``session``; raise NotSignedIn otherwise."""
    if not isinstance(session_token, str) or not session_token:
        raise NotSignedIn("not signed in")
    row = session.exec(
        select(AuthSession, User, Portal)
        .join(User, User.id == AuthSession.user_id)
        .join(Portal, Portal.id == User.portal_id)
        .where(AuthSession.token_hash == hash_token(session_token))
    ).first()
    if row is None:
        raise NotSignedIn("the session is unknown; sign in again")
    found, user, portal = row
    if found.ended_at is not None or found.expires_at <= now:
        raise NotSignedIn("the session has ended; sign in again")
    if not user.active:
        raise NotSignedIn("the account is disabled")
    return SignedInUser(
        user_id=user.id,
        username=user.username,
        kind=user.kind,
        profile=user.profile,
        portal_id=portal.id,
        portal_slug=portal.slug,
        portal_name=portal.name,
        with_code=found.with_code,
        expires_at=found.expires_at,
    )


def sign_out(ctx: Context, session_token: str | None) -> None:
    """End a session; unknown or ended sessions are ignored."""
    now = ctx.now()
    with Session(ctx.engine) as session, session.begin():
        try:
            user = signed_in_user(session, session_token, now)
        except NotSignedIn:
            return
        connection = session.connection()
        connection.execute(
            update(AuthSession)
            .where(AuthSession.token_hash == hash_token(session_token))
            .values(ended_at=now)
        )
        audit.record(
            connection,
            now,
            audit.Event.SIGNED_OUT,
            audit.Outcome.SUCCESS,
            actor=audit.Actor.user(user.username),
            portal_id=user.portal_id,
            portal_slug=user.portal_slug,
            target=user.username,
        )


def _result(status: Status, reason: Reason, now: int, **fields) -> SignInResult:
    text = messages.describe(
        reason,
        now=now,
        locked_until=fields.get("locked_until") or 0,
        failures=fields.get("failures", 0),
        format_problem=fields.get("format_problem"),
    )
    return SignInResult(status, text, reason=reason, **fields)


@functools.cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    return hasher.hash(_DUMMY_PASSWORD)


def _reject_unknown_user(ctx: Context, portal_slug: str, now: int) -> SignInResult:
    # The typed username is not recorded: people sometimes type a password there.
    with Session(ctx.engine) as session, session.begin():
        connection = session.connection()
        portal = session.exec(select(Portal).where(Portal.slug == portal_slug)).first()
        audit.record(
            connection,
            now,
            audit.Event.PASSWORD_REJECTED,
            audit.Outcome.REJECTED,
            portal_id=portal.id if portal else None,
            portal_slug=portal.slug if portal else None,
            reason="unknown portal or user",
        )
    return _result(Status.REJECTED, Reason.INVALID_CREDENTIALS, now)


def _live_enrollment(session: Session, user_id: int) -> Enrollment | None:
    return session.exec(
        select(Enrollment).where(
            Enrollment.user_id == user_id, Enrollment.status.in_(LIVE_STATUSES)
        )
    ).first()


def _end_enrollment(
    connection: Connection, enrollment_id: int, status: str, now: int
) -> None:
    connection.execute(
        update(Enrollment)
        .where(Enrollment.id == enrollment_id, Enrollment.status.in_(LIVE_STATUSES))
        .values(status=status, ended_at=now)
    )


def _ensure_pending_enrollment(
    ctx: Context,
    connection: Connection,
    enrollment: Enrollment | None,
    user: User,
    settings: SecuritySettings,
    now: int,
    where: dict[str, object],
) -> None:
    """Keep an unexpired pending enrollment; otherwise expire it and start a new one."""
    actor = audit.Actor.user(user.username)
    if enrollment is not None and enrollment.expires_at > now:
        return
    if enrollment is not None:
        _end_enrollment(connection, enrollment.id, EnrollmentStatus.EXPIRED, now)
        audit.record(
            connection,
            now,
            audit.Event.ENROLLMENT_EXPIRED,
            audit.Outcome.REJECTED,
            actor=actor,
            **where,
        )

    try:
        with connection.begin_nested():
            connection.execute(
                insert(Enrollment).values(
                    user_id=user.id,
                    portal_id=user.portal_id,
                    generation=settings.generation,
                    status=EnrollmentStatus.PENDING,
                    secret_encrypted=ctx.box.encrypt(totp.generate_secret()),
                    created_at=now,
                    expires_at=now + ENROLLMENT_SECONDS,
                )
            )
    except IntegrityError:
        # Another sign-in of the same user created the pending enrollment first.
        log.info(
            "pending enrollment of user %d was created by a concurrent sign-in", user.id
        )
        return
    audit.record(
        connection,
        now,
        audit.Event.ENROLLMENT_STARTED,
        audit.Outcome.SUCCESS,
        actor=actor,
        detail={"generation": settings.generation},
        **where,
    )


def _open_challenge(
    connection: Connection, user_id: int, kind: ChallengeKind, now: int
) -> str:
    token, token_hash = new_token()
    connection.execute(
        insert(SignInChallenge).values(
            token_hash=token_hash,
            user_id=user_id,
            kind=kind,
            state=ChallengeState.OPEN,
            created_at=now,
            expires_at=now + CHALLENGE_SECONDS,
        )
    )
    return token


def _cancel_challenge(connection: Connection, challenge_id: int) -> None:
    connection.execute(
        update(SignInChallenge)
        .where(SignInChallenge.id == challenge_id)
        .values(state=ChallengeState.CANCELLED)
    )


def _open_session(
    connection: Connection, user_id: int, now: int, with_code: bool
) -> str:
    token, token_hash = new_token()
    connection.execute(
        insert(AuthSession).values(
            token_hash=token_hash,
            user_id=user_id,
            with_code=with_code,
            created_at=now,
            expires_at=now + SESSION_SECONDS,
        )
    )
    return token
