"""Portals, users, the two-factor switch and resets by a Master Admin.

Every privileged call checks the actor here, in the core. The switch, the
window and the user list need a Master Admin of the same portal. A reset needs
a Master Admin of the same portal acting on another internal user. Each
refusal is audited and raises PermissionDenied. Support resets live in
core.support.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn, ParamSpec, TypeVar

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core import audit, provisioning, totp
from core.context import Context
from core.errors import (
    AlreadyExists,
    InvalidValue,
    NotFound,
    NotSignedIn,
    PermissionDenied,
)
from core.models import (
    AuthSession,
    ChallengeState,
    CodeThrottle,
    Enrollment,
    EnrollmentStatus,
    Portal,
    Profile,
    SecuritySettings,
    SignInChallenge,
    User,
    UserKind,
)
from core.passwords import check_new_password
from core.signin import LIVE_STATUSES, SignedInUser, signed_in_user
from core.text import is_text
from core.tokens import hash_token

P = ParamSpec("P")
R = TypeVar("R")

SLUG_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
MAX_WINDOW = 3
MAX_DRIFT_LIMIT = 10
MAX_REASON_CHARS = 500

# Profile names as the command line and the dashboard spell them.
PROFILE_NAMES = {
    "master-admin": Profile.MASTER_ADMIN,
    "admin": Profile.ADMIN,
    "standard": Profile.STANDARD,
    "read-only": Profile.READ_ONLY,
}
PROFILE_LABELS = {
    Profile.MASTER_ADMIN: "Master Admin",
    Profile.ADMIN: "Admin",
    Profile.STANDARD: "Standard",
    Profile.READ_ONLY: "Read only",
}


@dataclass(frozen=True)
class SwitchResult:
    enabled: bool
    changed: bool
    revoked: int  # enrollments revoked by turning the setting off
    generation: int


@dataclass(frozen=True)
class ResetResult:
    target: str
    revoked: int  # pending or active enrollments revoked


class _Refusal(Exception):
    """A refused action, raised inside a transaction and audited after its rollback."""

    def __init__(
        self,
        actor: SignedInUser,
        portal: Portal,
        action: str,
        message: str,
        target: str | None,
        detail: dict[str, object] | None,
    ) -> None:
        super().__init__(message)
        self.actor_name = actor.username
        self.portal_id = portal.id
        self.portal_slug = portal.slug
        self.action = action
        self.message = message
        self.target = target
        self.detail = detail


def refuse(
    actor: SignedInUser,
    portal: Portal,
    action: str,
    message: str,
    target: str | None = None,
    detail: dict[str, object] | None = None,
) -> NoReturn:
    """Reject an action of a signed-in user; the audits_refusals wrapper audits it."""
    raise _Refusal(actor, portal, action, message, target, detail)


def audits_refusals(function: Callable[P, R]) -> Callable[P, R]:
    """Audit every refusal in a transaction of its own, then raise PermissionDenied.

    Any other PermissionDenied, NotSignedIn included, is audited too, with the
    portal named in the call and no actor, because no valid actor is known.
    """
    signature = inspect.signature(function)

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except PermissionDenied as error:
            ctx = args[0]
            assert isinstance(ctx, Context)
            slug = signature.bind_partial(*args, **kwargs).arguments.get("portal_slug")
            with Session(ctx.engine) as session, session.begin():
                try:
                    portal = find_portal(session, slug)
                except NotFound:
                    portal = None
                audit.record(
                    session.connection(),
                    ctx.now(),
                    audit.Event.ACTION_REJECTED,
                    audit.Outcome.REJECTED,
                    actor=audit.Actor("anonymous"),
                    portal_id=portal.id if portal else None,
                    portal_slug=portal.slug if portal else None,
                    reason=f"{function.__name__}: {error}",
                )
            raise
        except _Refusal as refusal:
            ctx = args[0]
            assert isinstance(ctx, Context)
            with Session(ctx.engine) as session, session.begin():
                audit.record(
                    session.connection(),
                    ctx.now(),
                    audit.Event.ACTION_REJECTED,
                    audit.Outcome.REJECTED,
                    actor=audit.Actor.user(refusal.actor_name),
                    portal_id=refusal.portal_id,
                    portal_slug=refusal.portal_slug,
                    target=refusal.target,
                    reason=f"{refusal.action}: {refusal.message}",
                    detail=refusal.detail,
                )
            raise PermissionDenied(refusal.message) from None

    return wrapper


def check_slug(slug: object) -> str:
    if not isinstance(slug, str) or not SLUG_PATTERN.fullmatch(slug):
        raise InvalidValue(
            f"portal slug {slug!r} is invalid: use 1 to 63 lower-case letters, digits "
            "and inner dashes"
        )
    return slug


def check_username(username: object) -> str:
    if not isinstance(username, str):
        raise InvalidValue("username must be text")
    if username != username.strip():
        raise InvalidValue(f"username {username!r} has leading or trailing spaces")
    return provisioning.check_label("username", username)


def create_portal(ctx: Context, slug: str, name: str) -> Portal:
    """Create a portal with two-factor authentication off."""
    check_slug(slug)
    provisioning.check_label("portal name", name)
    now = ctx.now()
    try:
        with Session(ctx.engine) as session, session.begin():
            portal = Portal(slug=slug, name=name.strip(), created_at=now)
            session.add(portal)
            session.flush()
            session.add(SecuritySettings(portal_id=portal.id, changed_at=now))
            audit.record(
                session.connection(),
                now,
                audit.Event.PORTAL_CREATED,
                audit.Outcome.SUCCESS,
                portal_id=portal.id,
                portal_slug=slug,
            )
            session.expunge(portal)
    except IntegrityError as error:
        raise AlreadyExists(f"portal {slug!r} already exists") from error
    return portal


@audits_refusals
def add_user(
    ctx: Context,
    portal_slug: str,
    username: str,
    password: str,
    profile: str,
    session_token: str | None = None,
) -> int:
    """Add a user; ``profile`` is a PROFILE_NAMES key, or ``customer``. Return the id.

    The first Master Admin of a portal is added without a session. Once a
    portal has an active Master Admin, only a Master Admin of that portal
    (``session_token``) can add users, so that adding a Master Admin is no way
    around a locked-out one.
    """
    check_username(username)
    check_new_password(password)
    if profile == "customer":
        kind, internal_profile = UserKind.CUSTOMER, None
    elif profile in PROFILE_NAMES:
        kind, internal_profile = UserKind.INTERNAL, PROFILE_NAMES[profile]
    else:
        choices = ", ".join([*PROFILE_NAMES, "customer"])
        raise InvalidValue(f"profile {profile!r} is unknown; choose one of {choices}")

    password_hash = ctx.hasher.hash(password)
    now = ctx.now()
    try:
        with Session(ctx.engine) as session, session.begin():
            portal = find_portal(session, portal_slug)
            actor = None
            if _count_master_admins(session, portal.id) > 0:
                if session_token is None:
                    raise NotSignedIn(
                        f"portal {portal.slug!r} has a Master Admin: sign in as a Master "
                        "Admin to add users"
                    )
                actor, _ = _require_master_admin(
                    ctx, session, session_token, portal_slug, "add users"
                )
            elif internal_profile != Profile.MASTER_ADMIN:
                raise InvalidValue(
                    f"portal {portal.slug!r} has no Master Admin yet: add one first"
                )
            user = User(
                portal_id=portal.id,
                username=username,
                kind=kind,
                profile=internal_profile,
                password_hash=password_hash,
                created_at=now,
            )
            session.add(user)
            session.flush()
            session.add(CodeThrottle(user_id=user.id))
            audit.record(
                session.connection(),
                now,
                audit.Event.USER_ADDED,
                audit.Outcome.SUCCESS,
                actor=audit.Actor.user(actor.username) if actor else audit.SYSTEM,
                portal_id=portal.id,
                portal_slug=portal.slug,
                target=username,
                detail={"profile": str(internal_profile or kind)},
            )
            return user.id
    except IntegrityError as error:
        raise AlreadyExists(
            f"user {username!r} already exists in portal {portal_slug!r}"
        ) from error


@audits_refusals
def set_two_factor(
    ctx: Context, session_token: str, portal_slug: str, enabled: bool
) -> SwitchResult:
    """Turn two-factor authentication on or off for a portal (Master Admin only).

    Off revokes every pending and active enrollment of the portal. On raises
    the generation, so every internal user enrolls again with a new secret.
    """
    now = ctx.now()
    with Session(ctx.engine) as session, session.begin():
        actor, portal = _require_master_admin(
            ctx, session, session_token, portal_slug, "change the two-factor setting"
        )
        settings = session.get(SecuritySettings, portal.id, with_for_update=True)
        if settings.two_factor_enabled == enabled:
            return SwitchResult(enabled, False, 0, settings.generation)

        connection = session.connection()
        revoked = 0
        if enabled:
            settings.generation += 1
            # Sessions signed in without a code end now, except the one that
            # turned the setting on: its user enrolls at their next sign-in.
            connection.execute(
                update(AuthSession)
                .where(
                    AuthSession.user_id.in_(
                        select(User.id).where(
                            User.portal_id == portal.id, User.kind == UserKind.INTERNAL
                        )
                    ),
                    AuthSession.with_code.is_(False),
                    AuthSession.ended_at.is_(None),
                    AuthSession.token_hash != hash_token(session_token),
                )
                .values(ended_at=now)
            )
        else:
            revoked = _revoke_portal(connection, portal.id, now)
        settings.two_factor_enabled = enabled
        settings.changed_at = now
        settings.changed_by = actor.username
        session.flush()

        audit.record(
            connection,
            now,
            audit.Event.SETTING_CHANGED,
            audit.Outcome.SUCCESS,
            actor=audit.Actor.user(actor.username),
            portal_id=portal.id,
            portal_slug=portal.slug,
            reason="two-factor on" if enabled else "two-factor off",
            detail={"generation": settings.generation, "revoked_enrollments": revoked},
        )
        return SwitchResult(enabled, True, revoked, settings.generation)


@audits_refusals
def set_window(ctx: Context, session_token: str, portal_slug: str, window: int) -> None:
    """Set how many time steps on either side of ours are accepted (Master Admin only)."""
    if not isinstance(window, int) or isinstance(window, bool):
        raise InvalidValue(f"window {window!r} must be a whole number of time steps")
    if not 0 <= window <= MAX_WINDOW:
        raise InvalidValue(
            f"window {window} is out of range: use 0 to {MAX_WINDOW} steps"
        )
    now = ctx.now()
    with Session(ctx.engine) as session, session.begin():
        actor, portal = _require_master_admin(
            ctx, session, session_token, portal_slug, "change the code window"
        )
        settings = session.get(SecuritySettings, portal.id)
        previous = settings.window
        settings.window = window
        settings.changed_at = now
        settings.changed_by = actor.username
        session.flush()
        audit.record(
            session.connection(),
            now,
            audit.Event.SETTING_CHANGED,
            audit.Outcome.SUCCESS,
            actor=audit.Actor.user(actor.username),
            portal_id=portal.id,
            portal_slug=portal.slug,
            reason="window",
            detail={"window": window, "previous_window": previous},
        )


def set_drift_limit(ctx: Context, portal_slug: str, drift_limit: int) -> None:
    """Set the largest drift in time steps that is remembered (0 turns drift tracking off).

    This is a deployment setting for operators and simulations, not a portal
    admin action, so it takes no session.
    """
    if not isinstance(drift_limit, int) or not 0 <= drift_limit <= MAX_DRIFT_LIMIT:
        raise InvalidValue(
            f"drift limit {drift_limit!r} is out of range: use 0 to {MAX_DRIFT_LIMIT} steps"
        )
    now = ctx.now()
    with Session(ctx.engine) as session, session.begin():
        portal = find_portal(session, portal_slug)
        settings = session.get(SecuritySettings, portal.id)
        previous = settings.drift_limit
        settings.drift_limit = drift_limit
        session.flush()
        audit.record(
            session.connection(),
            now,
            audit.Event.SETTING_CHANGED,
            audit.Outcome.SUCCESS,
            portal_id=portal.id,
            portal_slug=portal.slug,
            reason="drift limit",
            detail={"drift_limit": drift_limit, "previous_drift_limit": previous},
        )


@audits_refusals
def reset_enrollment(
    ctx: Context,
    session_token: str,
    portal_slug: str,
    target_username: str,
    reason: str | None = None,
) -> ResetResult:
    """Revoke another internal user's enrollment, so that only they enroll again."""
    reason = _check_reason(reason)
    now = ctx.now()
    with Session(ctx.engine) as session, session.begin():
        actor, portal = _require_master_admin(
            ctx, session, session_token, portal_slug, "reset enrollments"
        )
        target = None
        if is_text(target_username, 200):
            target = session.exec(
                select(User).where(
                    User.portal_id == portal.id, User.username == target_username
                )
            ).first()
        refusal = None
        if target is None:
            refusal = (
                f"user {target_username!r} was not found in portal {portal.slug!r}"
            )
        elif target.id == actor.user_id:
            refusal = (
                "you cannot reset your own enrollment; another Master Admin or the "
                "vendor's support can"
            )
        elif target.kind != UserKind.INTERNAL:
            refusal = f"{target_username!r} is a customer user, who never enrolls"
        if refusal is not None:
            refuse(actor, portal, "reset enrollment", refusal, target_username)

        revoked = reset_user_state(session.connection(), target.id, now)
        audit.record(
            session.connection(),
            now,
            audit.Event.ENROLLMENT_RESET,
            audit.Outcome.SUCCESS,
            actor=audit.Actor.user(actor.username),
            portal_id=portal.id,
            portal_slug=portal.slug,
            target=target.username,
            reason=reason,
            detail={"revoked_enrollments": revoked},
        )
        return ResetResult(target.username, revoked)


def master_admin_count(ctx: Context, portal_slug: str) -> int:
    """Count the active Master Admins of a portal."""
    with Session(ctx.reader) as session:
        return _count_master_admins(session, find_portal(session, portal_slug).id)


def _count_master_admins(session: Session, portal_id: int) -> int:
    return session.exec(
        select(func.count()).where(
            User.portal_id == portal_id,
            User.profile == Profile.MASTER_ADMIN,
            User.active,
        )
    ).one()


@dataclass(frozen=True)
class UserState:
    """One user's enrollment state as the user list shows it, without any secret."""

    username: str
    kind: str
    profile: str  # label, such as "Master Admin", or "Customer"
    active: bool
    state: str  # not affected, not enrolled, pending, active
    pending_since: int | None
    active_since: int | None
    last_code_at: int | None  # start of the last accepted time step
    drift: int | None
    failures: int
    locked_until: int | None


def user_states(session: Session, portal_id: int, now: int) -> list[UserState]:
    """Return every user of a portal with the state of their live enrollment."""
    rows = session.exec(
        select(User, CodeThrottle, Enrollment)
        .join(CodeThrottle, CodeThrottle.user_id == User.id)
        .join(
            Enrollment,
            (Enrollment.user_id == User.id) & Enrollment.status.in_(LIVE_STATUSES),
            isouter=True,
        )
        .where(User.portal_id == portal_id)
        .order_by(User.kind.desc(), User.username)
    ).all()
    states = []
    for user, throttle, enrollment in rows:
        if user.kind == UserKind.CUSTOMER:
            state = "not affected"
        elif enrollment is None:
            state = "not enrolled"
        elif enrollment.status == EnrollmentStatus.PENDING:
            state = "pending" if enrollment.expires_at > now else "not enrolled"
        else:
            state = "active"
        active = enrollment is not None and state == "active"
        states.append(
            UserState(
                username=user.username,
                kind=user.kind,
                profile=PROFILE_LABELS.get(user.profile, "Customer"),
                active=user.active,
                state=state,
                pending_since=enrollment.created_at if state == "pending" else None,
                active_since=enrollment.confirmed_at if active else None,
                last_code_at=(
                    enrollment.last_step * totp.DEFAULT_PERIOD
                    if active and enrollment.last_step >= 0
                    else None
                ),
                drift=enrollment.drift if active else None,
                failures=throttle.failures,
                locked_until=throttle.locked_until
                if throttle.locked_until > now
                else None,
            )
        )
    return states


@audits_refusals
def list_users(ctx: Context, session_token: str, portal_slug: str) -> list[UserState]:
    """Return the users of a portal with their enrollment state (Master Admin only)."""
    with Session(ctx.engine) as session, session.begin():
        _, portal = _require_master_admin(
            ctx, session, session_token, portal_slug, "list users"
        )
        return user_states(session, portal.id, ctx.now())


def list_portals(ctx: Context) -> list[Portal]:
    """Return every portal, ordered by slug."""
    with Session(ctx.reader) as session:
        portals = list(session.exec(select(Portal).order_by(Portal.slug)))
        for portal in portals:
            session.expunge(portal)
        return portals


def portal_settings(ctx: Context, portal_slug: str) -> SecuritySettings:
    with Session(ctx.reader) as session:
        portal = find_portal(session, portal_slug)
        settings = session.get(SecuritySettings, portal.id)
        session.expunge(settings)
        return settings


def find_portal(session: Session, slug: str) -> Portal:
    portal = None
    if is_text(slug, 200):
        portal = session.exec(select(Portal).where(Portal.slug == slug)).first()
    if portal is None:
        raise NotFound(f"portal {slug!r} was not found")
    return portal


def _require_master_admin(
    ctx: Context, session: Session, session_token: str, portal_slug: str, action: str
) -> tuple[SignedInUser, Portal]:
    actor = signed_in_user(session, session_token, ctx.now())
    portal = find_portal(session, portal_slug)
    if actor.portal_id != portal.id:
        refuse(
            actor,
            portal,
            action,
            f"you are not a user of portal {portal.slug!r}",
            detail={"actor_portal": actor.portal_slug},
        )
    if actor.profile != Profile.MASTER_ADMIN:
        label = PROFILE_LABELS.get(actor.profile, "Customer")
        refuse(
            actor,
            portal,
            action,
            f"your profile {label} lacks the privilege to {action}; only a Master Admin can",
        )
    return actor, portal


def _check_reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    if not is_text(reason, MAX_REASON_CHARS):
        raise InvalidValue(
            f"reason must be text of at most {MAX_REASON_CHARS} characters, "
            "without NUL or unpaired surrogate characters"
        )
    return reason.strip() or None


def _revoke_portal(connection, portal_id: int, now: int) -> int:
    """Revoke every live enrollment, open challenge and code lock of a portal."""
    users = select(User.id).where(User.portal_id == portal_id)
    # Throttle rows first, in the order a code check locks them (throttle, then
    # enrollment), so the two never wait on each other in a cycle on PostgreSQL
    # (tests/test_races_more.py stages that interleaving).
    connection.execute(
        update(CodeThrottle)
        .where(CodeThrottle.user_id.in_(users))
        .values(failures=0, locked_until=0)
    )
    revoked = connection.execute(
        update(Enrollment)
        .where(Enrollment.portal_id == portal_id, Enrollment.status.in_(LIVE_STATUSES))
        .values(status=EnrollmentStatus.REVOKED, ended_at=now)
    ).rowcount
    connection.execute(
        update(SignInChallenge)
        .where(
            SignInChallenge.user_id.in_(users),
            SignInChallenge.state == ChallengeState.OPEN,
        )
        .values(state=ChallengeState.CANCELLED)
    )
    return revoked


def reset_user_state(connection, user_id: int, now: int) -> int:
    """Revoke one user's live enrollment, open challenges, code lock and sessions."""
    # The throttle row first, as in _revoke_portal.
    connection.execute(
        update(CodeThrottle)
        .where(CodeThrottle.user_id == user_id)
        .values(failures=0, locked_until=0)
    )
    revoked = connection.execute(
        update(Enrollment)
        .where(Enrollment.user_id == user_id, Enrollment.status.in_(LIVE_STATUSES))
        .values(status=EnrollmentStatus.REVOKED, ended_at=now)
    ).rowcount
    connection.execute(
        update(SignInChallenge)
        .where(
            SignInChallenge.user_id == user_id,
            SignInChallenge.state == ChallengeState.OPEN,
        )
        .values(state=ChallengeState.CANCELLED)
    )
    connection.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.ended_at.is_(None))
        .values(ended_at=now)
    )
    return revoked
