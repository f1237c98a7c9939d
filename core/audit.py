"""The audit log: one row per security event, written in the same transaction as the change."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, insert
from sqlmodel import Session, func, select

from core.models import AuditEvent
from core.prepared import Prepared, Raw


class Event(enum.StrEnum):
    PORTAL_CREATED = "portal_created"
    USER_ADDED = "user_added"
    SETTING_CHANGED = "setting_changed"
    SIGNED_IN = "signed_in"
    SIGNED_OUT = "signed_out"
    PASSWORD_REJECTED = "password_rejected"
    ENROLLMENT_STARTED = "enrollment_started"
    ENROLLMENT_CONFIRMED = "enrollment_confirmed"
    ENROLLMENT_EXPIRED = "enrollment_expired"
    ENROLLMENT_RESET = "enrollment_reset"
    CODE_ACCEPTED = "code_accepted"
    CODE_REJECTED = "code_rejected"
    REPLAY_REJECTED = "replay_rejected"
    CODE_LOCKED = "code_locked"
    SUPPORT_RESET = "support_reset"
    ACTION_REJECTED = "action_rejected"
    OPERATOR_ADDED = "operator_added"
    OPERATOR_CONFIRMED = "operator_confirmed"
    OPERATOR_SIGN_IN_REJECTED = "operator_sign_in_rejected"


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Actor:
    """The actor of an event: a portal user, a support operator, or the system."""

    kind: str
    name: str | None = None

    @classmethod
    def user(cls, username: str) -> Actor:
        return cls("user", username)

    @classmethod
    def operator(cls, name: str) -> Actor:
        return cls("operator", name)


SYSTEM = Actor("system")

# Run through core.prepared, because the SQLAlchemy layer around a statement
# cost more than writing the row.
_INSERT_EVENT = Prepared(
    insert(AuditEvent.__table__).values(
        {
            column: bindparam(f"new_{column}")
            for column in (
                "at",
                "portal_id",
                "portal_slug",
                "actor_kind",
                "actor",
                "target",
                "event",
                "outcome",
                "reason",
                "detail",
            )
        }
    )
)


def record(
    connection: Connection | Raw,
    at: int,
    event: Event,
    outcome: Outcome,
    *,
    actor: Actor = SYSTEM,
    portal_id: int | None = None,
    portal_slug: str | None = None,
    target: str | None = None,
    reason: str | None = None,
    detail: dict[str, object] | None = None,
) -> None:
    """Insert one audit row on ``connection``; the caller's transaction commits it.

    ``detail`` holds counts, ids, settings and ticket references only.
    """
    _INSERT_EVENT.execute(
        Raw.of(connection),
        {
            "new_at": at,
            "new_portal_id": portal_id,
            "new_portal_slug": portal_slug,
            "new_actor_kind": actor.kind,
            "new_actor": _storable(actor.name),
            "new_target": _storable(target),
            "new_event": str(event),
            "new_outcome": str(outcome),
            "new_reason": None if reason is None else _storable(str(reason)),
            "new_detail": json.dumps(detail, sort_keys=True) if detail else None,
        },
    )


def _storable(text: str | None) -> str | None:
    """Return text that every database accepts: NUL and lone surrogates become escapes."""
    if text is None:
        return None
    text = text.replace("\x00", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def last_event_id(connection: Connection, portal_id: int | None) -> int:
    """Return the id of the newest audit row of a portal, inside the caller's transaction."""
    query = select(func.max(AuditEvent.id))
    if portal_id is not None:
        query = query.where(AuditEvent.portal_id == portal_id)
    return connection.execute(query).scalar_one()


def recent_events(
    connection: Connection, portal_id: int | None = None, limit: int = 100
) -> list[AuditEvent]:
    """Return the newest audit events first, of one portal or of all."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if portal_id is not None:
        query = query.where(AuditEvent.portal_id == portal_id)
    with Session(bind=connection) as session:
        return list(session.exec(query))
