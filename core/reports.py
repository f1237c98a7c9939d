"""Read-only views for the dashboard: the audit log with filters, and the
enrollment overview with its history.

A Master Admin sees their own portal only. A signed-in support operator sees
every portal. Anyone else is rejected.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from core import admin
from core.context import Context
from core.errors import InvalidValue, NotSignedIn
from core.models import (
    AuditEvent,
    Enrollment,
    EnrollmentStatus,
    Portal,
    Profile,
    SecuritySettings,
    User,
    UserKind,
)
from core.operators import signed_in_operator
from core.signin import signed_in_user
from core.text import is_text

MAX_AUDIT_ROWS = 10_000


@dataclass(frozen=True)
class Viewer:
    """The reader of a report: a portal user's session or a support operator's session."""

    session: str | None = None
    operator_session: str | None = None


@dataclass(frozen=True)
class OverviewPoint:
    at: int
    enrolled: int
    pending: int
    not_started: int


@dataclass(frozen=True)
class EnrollmentOverview:
    portal_slug: str
    two_factor_enabled: bool
    enabled_since: int | None
    enrolled: int
    pending: int
    not_started: int
    history: list[OverviewPoint]


def _allowed_portal(
    session: Session, viewer: Viewer, portal_slug: str | None, now: int, report: str
) -> int | None:
    """Return the portal id the viewer may read (None: every portal, operators only)."""
    if viewer.operator_session:
        signed_in_operator(session, viewer.operator_session, now)
        if portal_slug:
            return admin.find_portal(session, portal_slug).id
        return None
    if not viewer.session:
        raise NotSignedIn("not signed in")
    user = signed_in_user(session, viewer.session, now)
    portal = admin.find_portal(session, portal_slug or user.portal_slug)
    if user.profile != Profile.MASTER_ADMIN:
        label = admin.PROFILE_LABELS.get(user.profile, "Customer")
        admin.refuse(
            user,
            portal,
            f"read the {report}",
            f"your profile {label} lacks the privilege to read the {report}; "
            "only a Master Admin can",
        )
    if portal.id != user.portal_id:
        admin.refuse(
            user,
            portal,
            f"read the {report}",
            f"you are not a user of portal {portal.slug!r}",
            detail={"actor_portal": user.portal_slug},
        )
    return user.portal_id


@admin.audits_refusals
def audit_events(
    ctx: Context,
    viewer: Viewer,
    *,
    portal_slug: str | None = None,
    username: str | None = None,
    event: str | None = None,
    since: int | None = None,
    until: int | None = None,
    limit: int = 1000,
) -> list[AuditEvent]:
    """Return audit events, newest first, that match every filter given.

    ``username`` matches the actor or the target. ``since`` and ``until`` are
    Unix seconds, both inclusive.
    """
    for name, value in (("username", username), ("event", event)):
        if value is not None and not is_text(value, 200):
            raise InvalidValue(f"the {name} filter is not usable text")
    if not isinstance(limit, int) or not 1 <= limit <= MAX_AUDIT_ROWS:
        raise InvalidValue(
            f"limit {limit!r} is out of range: use 1 to {MAX_AUDIT_ROWS}"
        )
    if since is not None and until is not None and since > until:
        raise InvalidValue("the start of the time range is after its end")
    now = ctx.now()
    with Session(ctx.reader) as session:
        portal_id = _allowed_portal(session, viewer, portal_slug, now, "audit log")
        query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
        if portal_id is not None:
            query = query.where(AuditEvent.portal_id == portal_id)
        if username:
            query = query.where(
                (AuditEvent.actor == username) | (AuditEvent.target == username)
            )
        if event:
            query = query.where(AuditEvent.event == event)
        if since is not None:
            query = query.where(AuditEvent.at >= since)
        if until is not None:
            query = query.where(AuditEvent.at <= until)
        events = list(session.exec(query))
        session.expunge_all()
        return events


@admin.audits_refusals
def enrollment_overview(
    ctx: Context, viewer: Viewer, portal_slug: str
) -> EnrollmentOverview:
    """Count internal users enrolled, pending and not started since the switch went on,
    with the counts after every change as history."""
    now = ctx.now()
    with Session(ctx.reader) as session:
        portal_id = _allowed_portal(
            session, viewer, portal_slug, now, "enrollment overview"
        )
        portal = session.get(Portal, portal_id)
        settings = session.get(SecuritySettings, portal_id)
        users = session.exec(
            select(User.id, User.created_at).where(
                User.portal_id == portal_id, User.kind == UserKind.INTERNAL, User.active
            )
        ).all()
        enrollments = session.exec(
            select(Enrollment).where(
                Enrollment.portal_id == portal_id,
                Enrollment.generation == settings.generation,
            )
        ).all()
        session.expunge_all()

    enabled_since = settings.changed_at if settings.two_factor_enabled else None
    if enabled_since is None:
        return EnrollmentOverview(portal.slug, False, None, 0, 0, len(users), [])

    moments = {enabled_since, now}
    for enrollment in enrollments:
        moments.update(
            moment
            for moment in (
                enrollment.created_at,
                enrollment.confirmed_at,
                enrollment.ended_at,
                enrollment.expires_at if enrollment.confirmed_at is None else None,
            )
            if moment is not None and enabled_since <= moment <= now
        )
    moments.update(created for _, created in users if enabled_since <= created <= now)

    history = [_point(moment, users, enrollments) for moment in sorted(moments)]
    latest = history[-1]
    return EnrollmentOverview(
        portal_slug=portal.slug,
        two_factor_enabled=True,
        enabled_since=enabled_since,
        enrolled=latest.enrolled,
        pending=latest.pending,
        not_started=latest.not_started,
        history=history,
    )


def _point(moment: int, users, enrollments) -> OverviewPoint:
    existing = {user_id for user_id, created in users if created <= moment}
    enrolled: set[int] = set()
    pending: set[int] = set()
    for enrollment in enrollments:
        if enrollment.user_id not in existing or enrollment.created_at > moment:
            continue
        ended = enrollment.ended_at is not None and enrollment.ended_at <= moment
        if ended:
            continue
        if enrollment.confirmed_at is not None and enrollment.confirmed_at <= moment:
            enrolled.add(enrollment.user_id)
        elif enrollment.status != EnrollmentStatus.ACTIVE or enrollment.confirmed_at:
            if enrollment.expires_at > moment:
                pending.add(enrollment.user_id)
        else:
            pending.add(enrollment.user_id)
    pending -= enrolled
    return OverviewPoint(
        at=moment,
        enrolled=len(enrolled),
        pending=len(pending),
        not_started=len(existing) - len(enrolled) - len(pending),
    )
