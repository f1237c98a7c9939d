"""The two-factor switch and resets by a Master Admin."""

import pytest
from sqlmodel import Session, select

from core import admin, signin
from core.audit import Event
from core.errors import InvalidValue, NotSignedIn, PermissionDenied
from core.models import AuditEvent, Enrollment
from core.signin import Status
from tests.helpers import (
    PASSWORDS,
    PERIOD,
    add_acme,
    code_at,
    code_challenge,
    enroll,
    password_only,
    start_enrollment,
)


def audit_rows(ctx, event):
    with Session(ctx.engine) as session:
        return session.exec(select(AuditEvent).where(AuditEvent.event == event)).all()


def statuses(ctx):
    with Session(ctx.engine) as session:
        return sorted(session.exec(select(Enrollment.status)).all())


@pytest.mark.parametrize("username", ["ann", "sam@acme.test", "rita", "cory"])
def test_switch_by_other_profiles_is_rejected(ctx, username):
    add_acme(ctx, two_factor=False)
    session = password_only(ctx, username)

    with pytest.raises(PermissionDenied, match="lacks the privilege"):
        admin.set_two_factor(ctx, session, "acme", True)

    assert admin.portal_settings(ctx, "acme").two_factor_enabled is False
    refused = audit_rows(ctx, Event.ACTION_REJECTED)
    assert len(refused) == 1
    assert refused[0].actor == username


def test_switch_by_master_admin_of_another_portal_is_rejected(ctx):
    add_acme(ctx, two_factor=False)
    admin.create_portal(ctx, "other", "Other Billing")
    admin.add_user(ctx, "other", "boss", PASSWORDS["boss"], "master-admin")
    session = password_only(ctx, "boss", portal="other")

    with pytest.raises(PermissionDenied, match="not a user of portal 'acme'"):
        admin.set_two_factor(ctx, session, "acme", True)
    assert admin.portal_settings(ctx, "acme").two_factor_enabled is False


def test_switch_without_a_session_is_rejected(ctx):
    add_acme(ctx, two_factor=False)
    for token in [None, "", "made-up-token"]:
        with pytest.raises(NotSignedIn):
            admin.set_two_factor(ctx, token, "acme", True)


def test_customers_are_never_asked_for_a_code(ctx):
    boss = add_acme(ctx, two_factor=False)
    for enabled in (True, False, True):
        admin.set_two_factor(ctx, boss, "acme", enabled)
        result = signin.submit_password(ctx, "acme", "cory", PASSWORDS["cory"])
        assert result.status == Status.SIGNED_IN
        assert signin.current_user(ctx, result.session).with_code is False


def test_every_internal_profile_must_enroll(ctx):
    add_acme(ctx)
    for username in ["boss", "ann", "sam@acme.test", "rita"]:
        result = signin.submit_password(ctx, "acme", username, PASSWORDS[username])
        assert result.status == Status.ENROLLMENT_REQUIRED, username
        assert result.session is None


def test_pending_secret_stays_the_same_until_it_expires(ctx, clock):
    add_acme(ctx)
    first_challenge, first = start_enrollment(ctx, "sam@acme.test")
    reload = signin.enrollment_offer(ctx, first_challenge)
    assert reload.uri == signin.enrollment_offer(ctx, first_challenge).uri

    # A new sign-in nine minutes later still shows the same pending secret.
    clock.advance(9 * 60)
    _, again = start_enrollment(ctx, "sam@acme.test")
    assert again == first

    clock.advance(61)  # past the 10 minutes
    _, renewed = start_enrollment(ctx, "sam@acme.test")
    assert renewed != first
    assert len(audit_rows(ctx, Event.ENROLLMENT_EXPIRED)) == 1


def test_sign_in_without_code_expires_after_five_minutes(ctx, clock):
    add_acme(ctx)
    secret = enroll(ctx, "sam@acme.test")
    clock.advance(10 * PERIOD)
    challenge = code_challenge(ctx, "sam@acme.test")

    clock.advance(5 * 60)
    result = signin.submit_code(ctx, challenge, code_at(secret, ctx.now()))

    assert result.status == Status.REJECTED
    assert result.session is None
    assert "expired" in result.message


def test_off_revokes_every_enrollment(ctx, clock):
    boss = add_acme(ctx)
    enroll(ctx, "sam@acme.test")
    enroll(ctx, "ann")
    start_enrollment(ctx, "rita")

    change = admin.set_two_factor(ctx, boss, "acme", False)

    assert change.revoked == 3
    assert statuses(ctx) == ["revoked", "revoked", "revoked"]
    result = signin.submit_password(
        ctx, "acme", "sam@acme.test", PASSWORDS["sam@acme.test"]
    )
    assert result.status == Status.SIGNED_IN


def test_on_again_needs_new_secrets_and_old_codes_fail(ctx, clock):
    boss = add_acme(ctx)
    old_secret = enroll(ctx, "sam@acme.test")
    admin.set_two_factor(ctx, boss, "acme", False)
    admin.set_two_factor(ctx, boss, "acme", True)
    clock.advance(10 * PERIOD)

    challenge, new_secret = start_enrollment(ctx, "sam@acme.test")
    assert new_secret != old_secret
    old_code = code_at(old_secret, ctx.now())
    if old_code != code_at(new_secret, ctx.now()):
        result = signin.submit_code(ctx, challenge, old_code)
        assert result.status == Status.REJECTED
    result = signin.submit_code(ctx, challenge, code_at(new_secret, ctx.now()))
    assert result.status == Status.SIGNED_IN

    # The old authenticator entry stays useless on later sign-ins too.
    for _ in range(4):  # fewer than the five failures that lock code entry
        clock.advance(3 * PERIOD)
        challenge = code_challenge(ctx, "sam@acme.test")
        old_code = code_at(old_secret, ctx.now())
        if old_code == code_at(new_secret, ctx.now()):
            continue
        assert signin.submit_code(ctx, challenge, old_code).status == Status.REJECTED


def test_switch_setting_the_same_value_changes_nothing(ctx):
    boss = add_acme(ctx)
    enroll(ctx, "sam@acme.test")
    change = admin.set_two_factor(ctx, boss, "acme", True)
    assert change.changed is False
    assert statuses(ctx) == ["active"]


def test_reset_makes_only_the_target_enroll_again(ctx, clock):
    boss = add_acme(ctx)
    enroll(ctx, "sam@acme.test")
    enroll(ctx, "ann")
    clock.advance(10 * PERIOD)

    result = admin.reset_enrollment(ctx, boss, "acme", "sam@acme.test", "lost phone")

    assert result.revoked == 1
    sam = signin.submit_password(
        ctx, "acme", "sam@acme.test", PASSWORDS["sam@acme.test"]
    )
    assert sam.status == Status.ENROLLMENT_REQUIRED
    ann = signin.submit_password(ctx, "acme", "ann", PASSWORDS["ann"])
    assert ann.status == Status.CODE_REQUIRED
    (row,) = audit_rows(ctx, Event.ENROLLMENT_RESET)
    assert (row.actor, row.target, row.reason) == (
        "boss",
        "sam@acme.test",
        "lost phone",
    )


def test_reset_cancels_a_sign_in_in_progress(ctx, clock):
    boss = add_acme(ctx)
    secret = enroll(ctx, "sam@acme.test")
    clock.advance(10 * PERIOD)
    challenge = code_challenge(ctx, "sam@acme.test")

    admin.reset_enrollment(ctx, boss, "acme", "sam@acme.test")

    result = signin.submit_code(ctx, challenge, code_at(secret, ctx.now()))
    assert result.status == Status.REJECTED
    assert result.session is None


def test_master_admin_cannot_reset_themselves(ctx):
    boss = add_acme(ctx, two_factor=False)
    with pytest.raises(PermissionDenied, match="your own enrollment"):
        admin.reset_enrollment(ctx, boss, "acme", "boss")


def test_master_admin_cannot_reset_a_user_of_another_portal(ctx):
    boss = add_acme(ctx, two_factor=False)
    admin.create_portal(ctx, "other", "Other Billing")
    admin.add_user(ctx, "other", "olga-boss", "Olga-boss-pass-1", "master-admin")
    olga_boss = password_only_with(ctx, "other", "olga-boss", "Olga-boss-pass-1")
    admin.add_user(ctx, "other", "olga", "Olga-pass-1", "standard", olga_boss)

    with pytest.raises(PermissionDenied, match="not found in portal 'acme'"):
        admin.reset_enrollment(ctx, boss, "acme", "olga")
    with pytest.raises(PermissionDenied, match="not a user of portal 'other'"):
        admin.reset_enrollment(ctx, boss, "other", "olga")
    assert len(audit_rows(ctx, Event.ACTION_REJECTED)) == 2


@pytest.mark.parametrize("username", ["ann", "sam@acme.test", "rita", "cory"])
def test_reset_by_other_profiles_is_rejected(ctx, username):
    add_acme(ctx, two_factor=False)
    session = password_only(ctx, username)
    with pytest.raises(PermissionDenied, match="lacks the privilege"):
        admin.reset_enrollment(ctx, session, "acme", "boss")


def test_master_admin_can_reset_another_master_admin(ctx, clock):
    boss = add_acme(ctx)
    admin.add_user(ctx, "acme", "boss2", PASSWORDS["boss2"], "master-admin", boss)
    enroll(ctx, "boss2")
    admin.reset_enrollment(ctx, boss, "acme", "boss2")
    result = signin.submit_password(ctx, "acme", "boss2", PASSWORDS["boss2"])
    assert result.status == Status.ENROLLMENT_REQUIRED


def test_window_out_of_range_is_rejected(ctx):
    boss = add_acme(ctx)
    for window in [-1, 4, 1.5, "1", True]:
        with pytest.raises(InvalidValue):
            admin.set_window(ctx, boss, "acme", window)
    assert admin.portal_settings(ctx, "acme").window == 1


def password_only_with(ctx, portal, username, password):
    result = signin.submit_password(ctx, portal, username, password)
    assert result.status == Status.SIGNED_IN, result
    return result.session


def test_adding_users_needs_a_master_admin_once_there_is_one(ctx):
    add_acme(ctx, two_factor=False)
    with pytest.raises(PermissionDenied, match="sign in as a Master Admin"):
        admin.add_user(ctx, "acme", "mallory", "Mallory-pass-1", "master-admin")
    ann = password_only(ctx, "ann")
    with pytest.raises(PermissionDenied, match="lacks the privilege"):
        admin.add_user(ctx, "acme", "mallory", "Mallory-pass-1", "master-admin", ann)
    assert admin.master_admin_count(ctx, "acme") == 1


def test_first_user_of_a_portal_must_be_a_master_admin(ctx):
    admin.create_portal(ctx, "empty", "Empty Billing")
    with pytest.raises(InvalidValue, match="no Master Admin yet"):
        admin.add_user(ctx, "empty", "sam", "Sam-pass-1", "standard")
