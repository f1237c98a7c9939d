"""Support operators: vendor staff who sign in with password and TOTP to run guided resets.

Operators are not portal users. An operator is added with a password and an
authenticator secret, and becomes usable once the first code confirms it. A
sign-in takes the password and the current code together, and the same
rules as for portal users apply to the code: window, drift, replay guard and
throttling.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core import audit, messages, provisioning, totp
from core.codes import normalise_code
from core.context import Context
from core.errors import AlreadyExists, InvalidValue, NotFound, NotSignedIn
from core.models import OperatorSession, SupportOperator
from core.passwords import check_new_password, verify_password
from core.text import is_text
from core.tokens import hash_token, new_token
from core.verification import CodeCheck, lock_seconds, match_step

OPERATOR_ISSUER = "Billing Portal Support"
OPERATOR_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@ -]{0,99}")
OPERATOR_SESSION_SECONDS = 4 * 60 * 60
OPERATOR_WINDOW = 1
OPERATOR_DRIFT_LIMIT = 3


class OperatorStatus(enum.StrEnum):
    SIGNED_IN = "signed_in"
    REJECTED = "rejected"
    LOCKED = "locked"


@dataclass(frozen=True)
class OperatorSignIn:
    status: OperatorStatus
    message: str
    session: str | None = None
    locked_until: int | None = None


@dataclass(frozen=True)
class OperatorOffer:
    """The new operator's secret, shown once so that it can be added to an app."""

    name: str
    uri: str
    grouped_secret: str

    def qr_png(self) -> bytes:
        return provisioning.qr_png(self.uri)

    def qr_text(self) -> str:
        return provisioning.qr_text(self.uri)


@dataclass(frozen=True)
class SignedInOperator:
    operator_id: int
    name: str
    expires_at: int


def check_operator_name(name: object) -> str:
    if not isinstance(name, str) or not OPERATOR_NAME_PATTERN.fullmatch(name):
        raise InvalidValue(
            f"operator name {name!r} is invalid: use 1 to 100 letters, digits, "
            "spaces or . _ @ -, starting with a letter or digit"
        )
    return name


def add_operator(ctx: Context, name: str, password: str) -> OperatorOffer:
    """Create an operator with a new secret; it can sign in once a code confirms it."""
    check_operator_name(name)
    check_new_password(password)
    secret = totp.generate_secret()
    now = ctx.now()
    try:
        with Session(ctx.engine) as session, session.begin():
            session.add(
                SupportOperator(
                    name=name,
                    password_hash=ctx.hasher.hash(password),
                    secret_encrypted=ctx.box.encrypt(secret),
                    created_at=now,
                )
            )
            session.flush()
            audit.record(
                session.connection(),
                now,
                audit.Event.OPERATOR_ADDED,
                audit.Outcome.SUCCESS,
                target=name,
            )
    except IntegrityError as error:
        raise AlreadyExists(f"operator {name!r} already exists") from error
    return OperatorOffer(
        name=name,
        uri=provisioning.key_uri(secret, OPERATOR_ISSUER, name),
        grouped_secret=provisioning.group_secret(secret),
    )


def confirm_operator(ctx: Context, name: str, code: object) -> OperatorSignIn:
    """Confirm a new operator's authenticator with its first code."""
    return _check(ctx, name, None, code, confirming=True)


def sign_in_operator(
    ctx: Context, name: str, password: str, code: object
) -> OperatorSignIn:
    """Sign an operator in with password and current code together."""
    return _check(ctx, name, password, code, confirming=False)


def current_operator(ctx: Context, session_token: str | None) -> SignedInOperator:
    """Return the operator of a live session; raise NotSignedIn otherwise."""
    with Session(ctx.reader) as session:
        return signed_in_operator(session, session_token, ctx.now())


def signed_in_operator(
    session: Session, session_token: str | None, now: int
) -> SignedInOperator:
    if not isinstance(session_token, str) or not session_token:
        raise NotSignedIn("no support operator is signed in")
    row = session.exec(
        select(OperatorSession, SupportOperator)
        .join(SupportOperator, SupportOperator.id == OperatorSession.operator_id)
        .where(OperatorSession.token_hash == hash_token(session_token))
    ).first()
    if row is None:
        raise NotSignedIn("the operator session is unknown; sign in again")
    found, operator = row
    if found.ended_at is not None or found.expires_at <= now:
        raise NotSignedIn("the operator session has ended; sign in again")
    if not operator.active or operator.confirmed_at is None:
        raise NotSignedIn(f"operator {operator.name!r} is disabled")
    return SignedInOperator(operator.id, operator.name, found.expires_at)


def sign_out_operator(ctx: Context, session_token: str | None) -> None:
    now = ctx.now()
    with Session(ctx.engine) as session, session.begin():
        try:
            operator = signed_in_operator(session, session_token, now)
        except NotSignedIn:
            return
        session.connection().execute(
            update(OperatorSession)
            .where(OperatorSession.token_hash == hash_token(session_token))
            .values(ended_at=now)
        )
        audit.record(
            session.connection(),
            now,
            audit.Event.SIGNED_OUT,
            audit.Outcome.SUCCESS,
            actor=audit.Actor.operator(operator.name),
        )


def list_operators(ctx: Context) -> list[str]:
    with Session(ctx.reader) as session:
        return list(
            session.exec(select(SupportOperator.name).order_by(SupportOperator.name))
        )


def _check(
    ctx: Context, name: str, password: str | None, code: object, confirming: bool
) -> OperatorSignIn:
    now = ctx.now()
    operator = None
    if is_text(name, 200):
        with Session(ctx.reader) as session:
            operator = session.exec(
                select(SupportOperator).where(SupportOperator.name == name)
            ).first()
    if operator is None:
        if confirming:
            raise NotFound(f"operator {name!r} was not found")
        return _rejected("The operator name, password or code is not correct.")
    if confirming and operator.confirmed_at is not None:
        raise InvalidValue(f"operator {name!r} is already confirmed")
    if not confirming:
        if operator.confirmed_at is None or not operator.active:
            return _rejected(f"Operator {name!r} is not confirmed or is disabled.")
        if not verify_password(ctx.hasher, operator.password_hash, password):
            return _audit_rejection(ctx, operator, now, "invalid_password")

    actor = audit.Actor.operator(operator.name)
    with Session(ctx.engine) as session, session.begin():
        connection = session.connection()
        current = session.get(SupportOperator, operator.id)
        if current.locked_until > now:
            return _locked(current.locked_until, now)

        normalised = normalise_code(code, totp.DEFAULT_DIGITS)
        matched = None
        if normalised.code is not None:
            check = CodeCheck(
                enrollment_id=current.id,
                user_id=current.id,
                expected_status="",
                secret=ctx.box.decrypt(current.secret_encrypted),
                last_step=current.last_step,
                drift=current.drift,
                window=OPERATOR_WINDOW,
                drift_limit=OPERATOR_DRIFT_LIMIT,
                failures=current.failures,
                locked_until=current.locked_until,
            )
            matched = match_step(check, normalised.code, now)
        claimed = 0
        if matched is not None:
            step, offset = matched
            values: dict[str, object] = {
                "last_step": step,
                "drift": max(-OPERATOR_DRIFT_LIMIT, min(OPERATOR_DRIFT_LIMIT, offset)),
                "failures": 0,
                "locked_until": 0,
            }
            if confirming:
                values["confirmed_at"] = now
            claimed = connection.execute(
                update(SupportOperator)
                .where(
                    SupportOperator.id == current.id, SupportOperator.last_step < step
                )
                .values(**values)
            ).rowcount

        if claimed != 1:
            failures = connection.execute(
                update(SupportOperator)
                .where(SupportOperator.id == current.id)
                .values(failures=SupportOperator.failures + 1)
                .returning(SupportOperator.failures)
            ).scalar_one()
            seconds = lock_seconds(failures)
            locked_until = now + seconds if seconds else 0
            if locked_until:
                connection.execute(
                    update(SupportOperator)
                    .where(SupportOperator.id == current.id)
                    .values(locked_until=locked_until)
                )
            audit.record(
                connection,
                now,
                audit.Event.OPERATOR_SIGN_IN_REJECTED,
                audit.Outcome.REJECTED,
                actor=actor,
                reason="bad_format"
                if normalised.code is None
                else "wrong_or_used_code",
                detail={"failures": failures},
            )
            if locked_until:
                return _locked(locked_until, now)
            return _rejected(
                "The operator name, password or code is not correct, or the code "
                "was already used."
            )

        if confirming:
            audit.record(
                connection,
                now,
                audit.Event.OPERATOR_CONFIRMED,
                audit.Outcome.SUCCESS,
                actor=actor,
                target=operator.name,
            )
            return OperatorSignIn(OperatorStatus.SIGNED_IN, "Operator confirmed.")

        token, token_hash = new_token()
        connection.execute(
            insert(OperatorSession).values(
                token_hash=token_hash,
                operator_id=current.id,
                created_at=now,
                expires_at=now + OPERATOR_SESSION_SECONDS,
            )
        )
        audit.record(
            connection,
            now,
            audit.Event.SIGNED_IN,
            audit.Outcome.SUCCESS,
            actor=actor,
            reason="operator password and code",
        )
        return OperatorSignIn(OperatorStatus.SIGNED_IN, "Signed in.", session=token)


def _rejected(message: str) -> OperatorSignIn:
    return OperatorSignIn(OperatorStatus.REJECTED, message)


def _locked(locked_until: int, now: int) -> OperatorSignIn:
    return OperatorSignIn(
        OperatorStatus.LOCKED,
        messages.describe("locked", now=now, locked_until=locked_until),
        locked_until=locked_until,
    )


def _audit_rejection(
    ctx: Context, operator: SupportOperator, now: int, reason: str
) -> OperatorSignIn:
    with Session(ctx.engine) as session, session.begin():
        audit.record(
            session.connection(),
            now,
            audit.Event.OPERATOR_SIGN_IN_REJECTED,
            audit.Outcome.REJECTED,
            actor=audit.Actor.operator(operator.name),
            reason=reason,
        )
    return _rejected("The operator name, password or code is not correct.")
