"""The support console's core calls: look a portal up, and the guided reset.

Only a signed-in support operator may call these. A guided reset needs a
ticket id and a completed identity checklist. When the target is the
portal's last active Master Admin, the checklist also needs the second
confirmation. Refusals are audited.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from sqlmodel import Session, func, select

from core import admin, audit
from core.context import Context
from core.errors import InvalidValue, NotFound
from core.models import Portal, Profile, SecuritySettings, User, UserKind
from core.operators import SignedInOperator, signed_in_operator
from core.text import is_text

TICKET_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/#-]{0,63}")


@dataclass(frozen=True)
class Checklist:
    """The identity checks an operator confirms before a guided reset."""

    requester_matches: bool = False  # name and e-mail of the requester match the record
    called_back: bool = False  # called back on the phone number on file
    last_admin_confirmed: bool = False  # second confirmation for the last Master Admin


@dataclass(frozen=True)
class PortalOverview:
    slug: str
    name: str
    two_factor_enabled: bool
    master_admins: int  # active Master Admins
    users: list[admin.UserState]


@dataclass(frozen=True)
class SupportResetResult:
    target: str
    revoked: int
    was_last_master_admin: bool
    audit_event_id: int


def check_ticket(ticket: object) -> str:
    if not isinstance(ticket, str) or not TICKET_PATTERN.fullmatch(ticket):
        raise InvalidValue(
            f"ticket {ticket!r} is invalid: give the support ticket id "
            "(1 to 64 letters, digits or . _ / # -)"
        )
    return ticket


@admin.audits_refusals
def find_portals(ctx: Context, operator_session: str, text: str = "") -> list[Portal]:
    """Return the portals whose slug or name contains ``text`` (any case)."""
    with Session(ctx.reader) as session:
        signed_in_operator(session, operator_session, ctx.now())
        query = select(Portal).order_by(Portal.slug)
        if text and not is_text(text, 200):
            raise InvalidValue("the portal search text is not usable text")
        if text:
            pattern = f"%{text.lower()}%"
            query = query.where(
                func.lower(Portal.slug).like(pattern)
                | func.lower(Portal.name).like(pattern)
            )
        portals = list(session.exec(query.limit(200)))
        for portal in portals:
            session.expunge(portal)
        return portals


@admin.audits_refusals
def portal_overview(
    ctx: Context, operator_session: str, portal_slug: str
) -> PortalOverview:
    """Return a portal's two-factor setting, Master Admin count and user states."""
    now = ctx.now()
    with Session(ctx.reader) as session:
        signed_in_operator(session, operator_session, now)
        portal = admin.find_portal(session, portal_slug)
        settings = session.get(SecuritySettings, portal.id)
        return PortalOverview(
            slug=portal.slug,
            name=portal.name,
            two_factor_enabled=settings.two_factor_enabled,
            master_admins=_master_admins(session, portal.id),
            users=admin.user_states(session, portal.id, now),
        )


@admin.audits_refusals
def support_reset(
    ctx: Context,
    operator_session: str,
    ticket: str,
    portal_slug: str,
    target_username: str,
    checklist: Checklist,
) -> SupportResetResult:
    """Reset one internal user's enrollment after the identity checklist.

    This is the only way around a locked-out last Master Admin. The target
    enrolls again at the next sign-in, and no other user is affected.
    """
    now = ctx.now()
    with Session(ctx.reader) as session:
        operator = signed_in_operator(session, operator_session, now)
        portal = admin.find_portal(session, portal_slug)
        target = None
        if is_text(target_username, 200):
            target = session.exec(
                select(User).where(
                    User.portal_id == portal.id, User.username == target_username
                )
            ).first()
        last_admin = (
            target is not None
            and target.profile == Profile.MASTER_ADMIN
            and target.active
            and _master_admins(session, portal.id) == 1
        )
        # Plain copies, because the rows expire when this session closes.
        session.expunge_all()

    problem = _problem(
        ticket, target, target_username, portal_slug, checklist, last_admin
    )
    if problem is not None:
        _audit_refusal(ctx, operator, portal, target_username, problem, now)
        raise problem

    with Session(ctx.engine) as session, session.begin():
        connection = session.connection()
        revoked = admin.reset_user_state(connection, target.id, now)
        audit.record(
            connection,
            now,
            audit.Event.SUPPORT_RESET,
            audit.Outcome.SUCCESS,
            actor=audit.Actor.operator(operator.name),
            portal_id=portal.id,
            portal_slug=portal.slug,
            target=target.username,
            reason=f"ticket {ticket}",
            detail={
                "ticket": ticket,
                "revoked_enrollments": revoked,
                "last_master_admin": last_admin,
                "checklist": asdict(checklist),
            },
        )
        event_id = audit.last_event_id(connection, portal.id)
    return SupportResetResult(target.username, revoked, last_admin, event_id)


def _problem(
    ticket: object,
    target: User | None,
    target_username: str,
    portal_slug: str,
    checklist: Checklist,
    last_admin: bool,
) -> InvalidValue | NotFound | None:
    try:
        check_ticket(ticket)
    except InvalidValue as error:
        return error
    if target is None:
        return NotFound(
            f"user {target_username!r} was not found in portal {portal_slug!r}"
        )
    if target.kind != UserKind.INTERNAL:
        return InvalidValue(
            f"{target_username!r} is a customer user, who never enrolls"
        )
    if not (checklist.requester_matches and checklist.called_back):
        return InvalidValue(
            "the identity checklist is incomplete: confirm that the requester matches "
            "the record and that you called back on the number on file"
        )
    if last_admin and not checklist.last_admin_confirmed:
        return InvalidValue(
            f"{target_username!r} is the last Master Admin of {portal_slug!r}: "
            "give the second confirmation to reset them"
        )
    return None


def _master_admins(session: Session, portal_id: int) -> int:
    return session.exec(
        select(func.count()).where(
            User.portal_id == portal_id,
            User.profile == Profile.MASTER_ADMIN,
            User.active,
        )
    ).one()


def _audit_refusal(
    ctx: Context,
    operator: SignedInOperator,
    portal: Portal,
    target: str,
    problem: Exception,
    now: int,
) -> None:
    with Session(ctx.engine) as session, session.begin():
        audit.record(
            session.connection(),
            now,
            audit.Event.ACTION_REJECTED,
            audit.Outcome.REJECTED,
            actor=audit.Actor.operator(operator.name),
            portal_id=portal.id,
            portal_slug=portal.slug,
            target=target if isinstance(target, str) and len(target) <= 150 else None,
            reason=f"support reset: {problem}"[:200],
        )
