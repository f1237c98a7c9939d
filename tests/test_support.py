"""Support operators and the guided reset of a locked-out last Master Admin."""

import json

import pytest
from sqlmodel import Session, select

from core import admin, operators, signin, support
from core.audit import Event
from core.errors import InvalidValue, NotFound, NotSignedIn
from core.models import AuditEvent, Enrollment
from core.operators import OperatorStatus
from core.signin import Status
from core.support import Checklist
from tests.helpers import (
    OPERATOR,
    OPERATOR_PASSWORD,
    PASSWORDS,
    PERIOD,
    add_acme,
    add_operator,
    code_at,
    code_challenge,
    enroll,
    operator_session,
)

FULL_CHECKLIST = Checklist(
    requester_matches=True, called_back=True, last_admin_confirmed=True
)


def audit_rows(ctx, event):
    with Session(ctx.engine) as session:
        return session.exec(select(AuditEvent).where(AuditEvent.event == event)).all()


def lock_out(ctx, clock, username, secret):
    clock.advance(10 * PERIOD)
    challenge = code_challenge(ctx, username)
    right = code_at(secret, ctx.now())
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(5):
        result = signin.submit_code(ctx, challenge, wrong)
    assert result.status == Status.LOCKED


def test_operator_must_confirm_before_signing_in(ctx):
    offer = operators.add_operator(ctx, OPERATOR, OPERATOR_PASSWORD)
    assert offer.uri.startswith("otpauth://totp/Billing%20Portal%20Support:Jo%20Ops?")
    result = operators.sign_in_operator(ctx, OPERATOR, OPERATOR_PASSWORD, "123456")
    assert result.status == OperatorStatus.REJECTED
    assert result.session is None


def test_operator_sign_in_needs_password_and_code(ctx, clock):
    secret = add_operator(ctx)
    clock.advance(PERIOD)
    code = code_at(secret, ctx.now())

    wrong_password = operators.sign_in_operator(ctx, OPERATOR, "not-it", code)
    assert wrong_password.status == OperatorStatus.REJECTED
    signed_in = operators.sign_in_operator(ctx, OPERATOR, OPERATOR_PASSWORD, code)
    assert signed_in.status == OperatorStatus.SIGNED_IN
    replay = operators.sign_in_operator(ctx, OPERATOR, OPERATOR_PASSWORD, code)
    assert replay.status == OperatorStatus.REJECTED
    assert operators.current_operator(ctx, signed_in.session).name == OPERATOR


def test_operator_wrong_codes_lock(ctx, clock):
    secret = add_operator(ctx)
    clock.advance(PERIOD)
    wrong = f"{(int(code_at(secret, ctx.now())) + 3) % 1_000_000:06d}"
    for _ in range(5):
        result = operators.sign_in_operator(ctx, OPERATOR, OPERATOR_PASSWORD, wrong)
    assert result.status == OperatorStatus.LOCKED
    right = operators.sign_in_operator(
        ctx, OPERATOR, OPERATOR_PASSWORD, code_at(secret, ctx.now())
    )
    assert right.status == OperatorStatus.LOCKED


def test_guided_reset_of_a_locked_out_last_master_admin(ctx, clock):
    add_acme(ctx)
    boss_secret = enroll(ctx, "boss")
    session = operator_session(ctx, add_operator(ctx))
    lock_out(ctx, clock, "boss", boss_secret)

    overview = support.portal_overview(ctx, session, "acme")
    assert overview.master_admins == 1
    boss_state = next(user for user in overview.users if user.username == "boss")
    assert boss_state.locked_until is not None

    result = support.support_reset(
        ctx, session, "SUP-1042", "acme", "boss", FULL_CHECKLIST
    )

    assert result.was_last_master_admin is True
    assert signin.submit_password(ctx, "acme", "boss", PASSWORDS["boss"]).status == (
        Status.ENROLLMENT_REQUIRED
    )
    (row,) = audit_rows(ctx, Event.SUPPORT_RESET)
    assert row.id == result.audit_event_id
    assert (row.actor_kind, row.actor, row.target) == ("operator", OPERATOR, "boss")
    detail = json.loads(row.detail)
    assert detail["ticket"] == "SUP-1042"
    assert detail["checklist"]["called_back"] is True
    assert detail["last_master_admin"] is True


def test_last_master_admin_needs_second_confirmation(ctx, clock):
    add_acme(ctx)
    enroll(ctx, "boss")
    session = operator_session(ctx, add_operator(ctx))
    partial = Checklist(requester_matches=True, called_back=True)

    with pytest.raises(InvalidValue, match="last Master Admin"):
        support.support_reset(ctx, session, "SUP-1", "acme", "boss", partial)

    with Session(ctx.engine) as db:
        assert db.exec(select(Enrollment.status)).all() == ["active"]
    assert len(audit_rows(ctx, Event.ACTION_REJECTED)) == 1


def test_other_users_need_no_second_confirmation(ctx, clock):
    add_acme(ctx)
    enroll(ctx, "sam@acme.test")
    session = operator_session(ctx, add_operator(ctx))
    partial = Checklist(requester_matches=True, called_back=True)
    result = support.support_reset(
        ctx, session, "SUP-2", "acme", "sam@acme.test", partial
    )
    assert result.revoked == 1
    assert result.was_last_master_admin is False


@pytest.mark.parametrize(
    "checklist",
    [Checklist(), Checklist(requester_matches=True), Checklist(called_back=True)],
)
def test_incomplete_checklist_is_rejected(ctx, clock, checklist):
    add_acme(ctx)
    enroll(ctx, "sam@acme.test")
    session = operator_session(ctx, add_operator(ctx))
    with pytest.raises(InvalidValue, match="checklist is incomplete"):
        support.support_reset(ctx, session, "SUP-3", "acme", "sam@acme.test", checklist)
    assert audit_rows(ctx, Event.SUPPORT_RESET) == []


@pytest.mark.parametrize("ticket", ["", None, "x" * 65, "SUP 1", "SUP\n1", "-SUP"])
def test_support_reset_needs_a_ticket(ctx, clock, ticket):
    add_acme(ctx)
    enroll(ctx, "sam@acme.test")
    session = operator_session(ctx, add_operator(ctx))
    with pytest.raises(InvalidValue, match="ticket"):
        support.support_reset(
            ctx, session, ticket, "acme", "sam@acme.test", FULL_CHECKLIST
        )
    assert audit_rows(ctx, Event.SUPPORT_RESET) == []


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_support_reset_needs_a_signed_in_operator(ctx, token):
    add_acme(ctx)
    enroll(ctx, "sam@acme.test")
    with pytest.raises(NotSignedIn):
        support.support_reset(
            ctx, token, "SUP-4", "acme", "sam@acme.test", FULL_CHECKLIST
        )


def test_portal_session_is_no_operator_session(ctx):
    boss = add_acme(ctx, two_factor=False)
    with pytest.raises(NotSignedIn):
        support.portal_overview(ctx, boss, "acme")


def test_support_reset_of_unknown_user_or_customer(ctx, clock):
    add_acme(ctx)
    session = operator_session(ctx, add_operator(ctx))
    with pytest.raises(NotFound):
        support.support_reset(ctx, session, "SUP-5", "acme", "nobody", FULL_CHECKLIST)
    with pytest.raises(InvalidValue, match="customer"):
        support.support_reset(ctx, session, "SUP-5", "acme", "cory", FULL_CHECKLIST)


def test_master_admin_user_list(ctx, clock):
    boss = add_acme(ctx)
    enroll(ctx, "sam@acme.test")
    states = {state.username: state for state in admin.list_users(ctx, boss, "acme")}
    assert states["sam@acme.test"].state == "active"
    assert states["sam@acme.test"].last_code_at == (ctx.now() // PERIOD) * PERIOD
    assert states["ann"].state == "not enrolled"
    assert states["cory"].state == "not affected"
