"""The dashboard's operations screens, driven through Streamlit's AppTest for every role.

Each test runs dashboard/app.py against its own SQLite file with portal acme
from tests.helpers, where boss is the only Master Admin. The dashboard reads
the system clock, so the tests' core context does too, and codes come from
pyotp at real time. Sessions are seeded into the session state where the
sign-in itself is not under test.
"""

from __future__ import annotations

import csv
import datetime
import io
import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core import admin, operators, reports, signin
from core.audit import Event
from core.context import open_context
from core.errors import PermissionDenied
from core.models import AuditEvent
from core.operators import OperatorStatus
from core.signin import Status
from core.verification import LOCK_AFTER_FAILURES
from dashboard import flow, state, tables
from dashboard.screens import support_console
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
    password_only,
    start_enrollment,
)

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"

SETTINGS = "screens/internal_settings.py"
USERS = "screens/internal_users.py"
OVERVIEW = "screens/enrollment_overview.py"
AUDIT = "screens/audit_log.py"
SUPPORT_SIGN_IN = "screens/support_sign_in.py"
CONSOLE = "screens/support_console.py"
EXPLORER = "screens/flow_explorer.py"
MASTER_ADMIN_PAGES = {
    SETTINGS: "Internal settings",
    USERS: "Internal users",
    OVERVIEW: "Enrollment overview",
    AUDIT: "Audit log",
}
OTHER_ROLES = ["ann", "sam@acme.test", "rita", "cory"]


@pytest.fixture
def core_ctx(tmp_path, monkeypatch):
    """Point the dashboard at a fresh SQLite file and return a core context on it.

    The context uses the system clock, as the dashboard does. The context cache
    is cleared on both sides, so no test gets another test's engine.
    """
    url = f"sqlite:///{tmp_path / 'twofa.sqlite3'}"
    monkeypatch.setenv("TWOFA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TWOFA_DATABASE_URL", url)
    st.cache_resource.clear()
    context = open_context(url, fast_hashing=True)
    yield context
    context.close()
    st.cache_resource.clear()


@pytest.fixture
def boss(core_ctx) -> str:
    """Create portal acme with two-factor authentication off. Return boss's session."""
    return add_acme(core_ctx, two_factor=False)


def start_app(**seeded: object) -> AppTest:
    """Run the app once with ``seeded`` session state, for example a session token."""
    at = AppTest.from_file(str(APP), default_timeout=30)
    for key, value in seeded.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception
    return at


def open_page(at: AppTest, script: str) -> AppTest:
    at.switch_page(script).run()
    assert not at.exception
    return at


def widget(elements, label):
    """Return the one element of ``elements`` with ``label``."""
    found = [element for element in elements if element.label == label]
    assert len(found) == 1, f"expected one widget {label!r}, found {len(found)}"
    return found[0]


def click(at: AppTest, label: str) -> None:
    widget(at.button, label).click()
    at.run()
    assert not at.exception


def texts(elements) -> list[str]:
    return [element.value for element in elements]


def joined(elements) -> str:
    return "\n".join(texts(elements))


def titles(at: AppTest) -> list[str]:
    return texts(at.title)


def metric(at: AppTest, label: str) -> str:
    return widget(at.metric, label).value


def next_step_code(secret: str) -> str:
    """Return the code of the next time step, which the one-step window accepts."""
    return code_at(secret, int(time.time()) + PERIOD)


def operator_token(ctx, secret: str) -> str:
    """Sign the operator in with the next step's code, after the confirming code."""
    result = operators.sign_in_operator(
        ctx, OPERATOR, OPERATOR_PASSWORD, next_step_code(secret)
    )
    assert result.status == OperatorStatus.SIGNED_IN, result
    return result.session


def lock_out(ctx, username: str, secret: str) -> None:
    """Enter wrong codes until code entry of an enrolled user locks."""
    challenge = code_challenge(ctx, username)
    right = code_at(secret, ctx.now())
    wrong = f"{(int(right) + 500_000) % 1_000_000:06d}"
    for _ in range(LOCK_AFTER_FAILURES):
        result = signin.submit_code(ctx, challenge, wrong)
    assert result.status == Status.LOCKED, result


def user_state(ctx, session: str, username: str) -> str:
    users = admin.list_users(ctx, session, "acme")
    return next(user.state for user in users if user.username == username)


# Navigation by role


def test_master_admin_gets_operations_pages(core_ctx, boss):
    at = start_app(session=boss)

    assert titles(at) == ["Signed in"]
    links = [link.value for link in at.get("page_link")]
    assert links == [*MASTER_ADMIN_PAGES.values(), "Flow explorer"]
    for script, title in MASTER_ADMIN_PAGES.items():
        open_page(at, script)
        assert titles(at) == [title]
        assert not at.error


@pytest.mark.parametrize("username", OTHER_ROLES)
def test_other_roles_lack_operations_pages(core_ctx, boss, username):
    session = password_only(core_ctx, username)
    at = start_app(session=session)

    assert titles(at) == ["Signed in"]
    assert [link.value for link in at.get("page_link")] == ["Flow explorer"]
    for script in [*MASTER_ADMIN_PAGES, CONSOLE]:
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(script)
    open_page(at, EXPLORER)
    assert titles(at) == ["Flow explorer"]


@pytest.mark.parametrize("username", OTHER_ROLES)
def test_core_rejects_other_roles(core_ctx, boss, username):
    session = password_only(core_ctx, username)
    viewer = reports.Viewer(session=session)
    calls = {
        "switch": lambda: admin.set_two_factor(core_ctx, session, "acme", True),
        "window": lambda: admin.set_window(core_ctx, session, "acme", 2),
        "users": lambda: admin.list_users(core_ctx, session, "acme"),
        "reset": lambda: admin.reset_enrollment(
            core_ctx, session, "acme", "boss", "test"
        ),
        "overview": lambda: reports.enrollment_overview(core_ctx, viewer, "acme"),
        "audit": lambda: reports.audit_events(core_ctx, viewer, portal_slug="acme"),
    }
    for name, call in calls.items():
        with pytest.raises(PermissionDenied, match="lacks the privilege"):
            call()
        assert admin.portal_settings(core_ctx, "acme").two_factor_enabled is False, name


def test_signed_out_visitor_gets_sign_in_pages(core_ctx, boss):
    at = start_app()

    assert titles(at) == ["Sign in"]
    open_page(at, SUPPORT_SIGN_IN)
    assert titles(at) == ["Support sign-in"]
    open_page(at, EXPLORER)
    assert titles(at) == ["Flow explorer"]
    for script in [*MASTER_ADMIN_PAGES, CONSOLE]:
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(script)


# Internal settings


def test_switch_on_after_confirmation(core_ctx, boss):
    at = open_page(start_app(session=boss), SETTINGS)
    switch = widget(at.toggle, "Two-factor authentication")
    assert switch.value is False

    switch.set_value(True).run()

    assert len(at.warning) == 1
    assert (
        "every internal user of this portal, you included, enrolls at the next sign-in"
        in (at.warning[0].value.lower())
    )
    assert admin.portal_settings(core_ctx, "acme").two_factor_enabled is False

    click(at, "Turn on")

    assert admin.portal_settings(core_ctx, "acme").two_factor_enabled is True
    assert texts(at.success) == [
        "Two-factor authentication is on. Every internal user enrolls at the next "
        "sign-in."
    ]
    assert widget(at.toggle, "Two-factor authentication").value is True
    assert not at.warning


def test_switch_off_warns_and_can_cancel(core_ctx, boss):
    admin.set_two_factor(core_ctx, boss, "acme", True)
    enroll(core_ctx, "ann")
    at = open_page(start_app(session=boss), SETTINGS)

    widget(at.toggle, "Two-factor authentication").set_value(False).run()
    warning = at.warning[0].value
    assert "every enrollment in this portal is revoked" in warning.lower()
    assert "everyone enrolls again" in warning

    click(at, "Cancel")
    assert widget(at.toggle, "Two-factor authentication").value is True
    assert not at.warning
    assert admin.portal_settings(core_ctx, "acme").two_factor_enabled is True

    widget(at.toggle, "Two-factor authentication").set_value(False).run()
    click(at, "Turn off")
    assert admin.portal_settings(core_ctx, "acme").two_factor_enabled is False
    assert texts(at.success) == [
        "Two-factor authentication is off. 1 enrollment(s) were revoked."
    ]


def test_window_is_saved(core_ctx, boss):
    at = open_page(start_app(session=boss), SETTINGS)

    widget(at.selectbox, "Window").set_value(2)
    click(at, "Save window")

    assert admin.portal_settings(core_ctx, "acme").window == 2
    assert texts(at.success) == [
        "The window is now 2: 2 time step(s) on either side, 60 s."
    ]
    assert widget(at.selectbox, "Window").value == 2


def test_settings_shows_core_rejection(core_ctx, boss, monkeypatch):
    message = (
        "your profile Standard lacks the privilege to change the two-factor setting"
    )

    def reject(*args, **kwargs):
        raise PermissionDenied(message)

    monkeypatch.setattr(admin, "set_two_factor", reject)
    at = open_page(start_app(session=boss), SETTINGS)
    widget(at.toggle, "Two-factor authentication").set_value(True).run()

    click(at, "Turn on")

    assert texts(at.error) == [
        "Your profile Standard lacks the privilege to change the two-factor setting."
    ]


# Internal users


def test_users_table_lists_every_user(core_ctx, boss):
    at = open_page(start_app(session=boss), USERS)

    table = at.dataframe[0].value
    assert sorted(table["Username"]) == sorted(PASSWORDS.keys() - {"boss2"})
    states = dict(zip(table["Username"], table["State"], strict=True))
    assert states["cory"] == "not affected"
    assert states["ann"] == "not enrolled"

    widget(at.text_input, "Filter").input("read").run()
    assert list(at.dataframe[0].value["Username"]) == ["rita"]


def test_users_reset_needs_reason_and_confirmation(core_ctx, boss):
    admin.set_two_factor(core_ctx, boss, "acme", True)
    enroll(core_ctx, "ann")
    at = open_page(start_app(session=boss), USERS)
    target = widget(at.selectbox, "User to reset")
    assert "boss" not in target.options, "no reset of oneself is offered"
    assert "cory" not in target.options, "customers never enroll"

    target.set_value("ann")
    click(at, "Reset")
    assert texts(at.error) == [
        "Enter a reason for the reset. It is recorded in the audit log."
    ]
    assert user_state(core_ctx, boss, "ann") == "active"

    widget(at.selectbox, "User to reset").set_value("ann")
    widget(at.text_input, "Reason").input("lost phone")
    click(at, "Reset")
    assert "ann" in at.warning[0].value
    assert user_state(core_ctx, boss, "ann") == "active", (
        "nothing before the confirmation"
    )

    click(at, "Confirm reset")
    assert user_state(core_ctx, boss, "ann") == "not enrolled"
    assert len(at.success) == 1
    assert at.success[0].value.startswith("The enrollment of ann was reset")
    events = reports.audit_events(
        core_ctx, reports.Viewer(session=boss), event=Event.ENROLLMENT_RESET
    )
    assert [(event.target, event.reason) for event in events] == [("ann", "lost phone")]


def test_users_reset_can_be_cancelled(core_ctx, boss):
    admin.set_two_factor(core_ctx, boss, "acme", True)
    enroll(core_ctx, "ann")
    at = open_page(start_app(session=boss), USERS)
    widget(at.selectbox, "User to reset").set_value("ann")
    widget(at.text_input, "Reason").input("lost phone")
    click(at, "Reset")

    click(at, "Cancel")

    assert user_state(core_ctx, boss, "ann") == "active"
    assert widget(at.button, "Reset")


# Enrollment overview


def test_overview_counts_users_by_state(core_ctx, boss):
    admin.set_two_factor(core_ctx, boss, "acme", True)
    enroll(core_ctx, "ann")
    start_enrollment(core_ctx, "sam@acme.test")

    at = open_page(start_app(session=boss), OVERVIEW)

    assert metric(at, "Enrolled") == "1"
    assert metric(at, "Pending") == "1"
    assert metric(at, "Not started") == "2"
    assert len(at.get("vega_lite_chart")) == 1
    assert not at.error


def test_overview_while_switch_off(core_ctx, boss):
    at = open_page(start_app(session=boss), OVERVIEW)

    assert len(at.info) == 1
    assert at.info[0].value.startswith("Two-factor authentication is off")
    assert not at.metric


# Audit log


@pytest.fixture
def downloads(monkeypatch) -> list[dict]:
    """Record the arguments of every st.download_button call, then make the button."""
    calls: list[dict] = []
    original = st.download_button

    def record(label, data, *args, **kwargs):
        calls.append({"label": label, "data": data, **kwargs})
        return original(label, data, *args, **kwargs)

    monkeypatch.setattr(st, "download_button", record)
    return calls


def test_audit_log_filters_and_csv(core_ctx, boss, downloads):
    admin.set_two_factor(core_ctx, boss, "acme", True)
    enroll(core_ctx, "ann")
    at = open_page(start_app(session=boss), AUDIT)

    table = at.dataframe[0].value
    assert set(table["Portal"]) == {"acme"}
    assert Event.ENROLLMENT_CONFIRMED in set(table["Event"])
    assert len(at.get("vega_lite_chart")) == 1
    assert downloads[-1]["label"] == "Download CSV"
    rows = list(csv.DictReader(io.StringIO(downloads[-1]["data"])))
    assert len(rows) == len(table)
    assert [row["ID"] for row in rows] == [str(value) for value in table["ID"]]
    for password in PASSWORDS.values():
        assert password not in downloads[-1]["data"]

    widget(at.text_input, "Username").input("ann").run()
    table = at.dataframe[0].value
    assert all(
        "ann" in (actor, target)
        for actor, target in zip(table["Actor"], table["Target"], strict=True)
    )

    widget(at.selectbox, "Event").set_value(str(Event.SETTING_CHANGED)).run()
    assert texts(at.info) == ["No audit event matches these filters."]
    widget(at.text_input, "Username").input("").run()
    assert set(at.dataframe[0].value["Event"]) == {"setting_changed"}


def test_audit_log_time_range(core_ctx, boss):
    today = datetime.datetime.now(datetime.UTC).date()
    at = open_page(start_app(session=boss), AUDIT)

    widget(at.date_input, "From (UTC)").set_value(today)
    widget(at.date_input, "To (UTC)").set_value(today).run()
    assert len(at.dataframe[0].value) > 0

    widget(at.date_input, "From (UTC)").set_value(
        today + datetime.timedelta(days=1)
    ).run()
    assert texts(at.error) == ["The start of the time range is after its end."]

    widget(at.date_input, "To (UTC)").set_value(
        today + datetime.timedelta(days=1)
    ).run()
    assert texts(at.info) == ["No audit event matches these filters."]


# Support sign-in and console


@pytest.fixture
def operator_secret(core_ctx) -> str:
    return add_operator(core_ctx)


def sign_in_operator(at: AppTest, code: str, password: str = OPERATOR_PASSWORD) -> None:
    open_page(at, SUPPORT_SIGN_IN)
    widget(at.text_input, "Operator").input(OPERATOR)
    widget(at.text_input, "Password").input(password)
    widget(at.text_input, "Authentication code").input(code)
    click(at, "Sign in")


def test_operator_sign_in_rejects_wrong_password(core_ctx, boss, operator_secret):
    at = start_app()

    sign_in_operator(at, next_step_code(operator_secret), password="not-the-password")

    assert titles(at) == ["Support sign-in"]
    assert texts(at.error) == ["The operator name, password or code is not correct."]
    assert at.session_state[state.OPERATOR_SESSION] is None


def test_guided_reset_of_last_master_admin(core_ctx, boss, operator_secret):
    admin.set_two_factor(core_ctx, boss, "acme", True)
    boss_secret = enroll(core_ctx, "boss")
    lock_out(core_ctx, "boss", boss_secret)
    at = start_app()

    sign_in_operator(at, next_step_code(operator_secret))

    assert titles(at) == ["Support console"]
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(SETTINGS)
    widget(at.text_input, "Portal").input("acm").run()
    assert widget(at.selectbox, "Matching portals").value == "acme"
    assert metric(at, "Master Admins") == "1"
    users = at.dataframe[0].value.set_index("Username")
    assert users.loc["boss", "Locked until"] != ""
    assert users.loc["boss", "State"] == "active"

    widget(at.selectbox, "User to reset").set_value("boss").run()
    widget(at.checkbox, support_console.CHECK_REQUESTER).check()
    widget(at.checkbox, support_console.CHECK_CALLED_BACK).check()
    click(at, "Reset")
    assert len(at.error) == 1
    assert at.error[0].value.startswith("Ticket '' is invalid")

    widget(at.text_input, "Ticket").input("SUP-1042")
    click(at, "Reset")
    assert len(at.error) == 1
    assert "last Master Admin" in at.error[0].value
    assert "give the second confirmation" in at.error[0].value
    assert user_state(core_ctx, boss, "boss") == "active"

    widget(at.checkbox, support_console.CHECK_LAST_ADMIN).check()
    click(at, "Reset")

    assert not at.error
    assert len(at.success) == 1
    assert "They were the portal's last Master Admin." in at.success[0].value
    entry = at.dataframe[1].value
    assert list(entry["Event"]) == ["support_reset"]
    assert list(entry["Target"]) == ["boss"]
    assert list(entry["Actor"]) == [OPERATOR]
    assert list(entry["Reason"]) == ["ticket SUP-1042"]
    assert widget(at.text_input, "Ticket").value == "", "the next reset starts empty"

    result = signin.submit_password(core_ctx, "acme", "boss", PASSWORDS["boss"])
    assert result.status == Status.ENROLLMENT_REQUIRED


def test_guided_reset_needs_identity_checks(core_ctx, boss, operator_secret):
    admin.set_two_factor(core_ctx, boss, "acme", True)
    enroll(core_ctx, "ann")
    at = open_page(
        start_app(operator_session=operator_token(core_ctx, operator_secret)), CONSOLE
    )
    widget(at.selectbox, "User to reset").set_value("ann").run()
    assert all(box.label != support_console.CHECK_LAST_ADMIN for box in at.checkbox), (
        "no second confirmation for a user who is not the last Master Admin"
    )

    widget(at.text_input, "Ticket").input("SUP-7")
    click(at, "Reset")

    assert len(at.error) == 1
    assert at.error[0].value.startswith("The identity checklist is incomplete")
    assert user_state(core_ctx, boss, "ann") == "active"


def test_operator_signs_out(core_ctx, boss, operator_secret):
    at = start_app(operator_session=operator_token(core_ctx, operator_secret))
    assert titles(at) == ["Support console"]

    click(at, "Sign out")

    assert titles(at) == ["Sign in"]
    assert texts(at.info) == ["You are signed out of the support console."]
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(CONSOLE)


def test_operator_reads_every_portal_audit(core_ctx, boss, operator_secret):
    admin.create_portal(core_ctx, "beta", "Beta Billing")
    at = open_page(
        start_app(operator_session=operator_token(core_ctx, operator_secret)), AUDIT
    )

    assert {"acme", "beta"} <= set(at.dataframe[0].value["Portal"])

    widget(at.selectbox, "Portal").set_value("beta").run()
    assert set(at.dataframe[0].value["Portal"]) == {"beta"}


# Flow explorer


def explorer() -> AppTest:
    at = open_page(start_app(), EXPLORER)
    assert titles(at) == ["Flow explorer"]
    return at


def choose(at: AppTest, username: str) -> None:
    widget(at.selectbox, "Sandbox user").set_value(username).run()
    assert not at.exception


def test_explorer_moves_time(core_ctx):
    at = explorer()
    assert "2027-01-15 08:00:00 UTC" in joined(at.markdown)

    click(at, "+30 s")
    assert "2027-01-15 08:00:30 UTC" in joined(at.markdown)
    click(at, "+1 h")
    assert "2027-01-15 09:00:30 UTC" in joined(at.markdown)
    click(at, "−30 s")
    assert "2027-01-15 09:00:00 UTC" in joined(at.markdown)

    click(at, "Start over")
    assert "2027-01-15 08:00:00 UTC" in joined(at.markdown)


def test_explorer_flows(core_ctx):
    at = explorer()
    sandbox = at.session_state[flow.SANDBOX]

    # The owner signs in with the password only and turns two-factor on.
    choose(at, "owner")
    click(at, "Submit password")
    assert texts(at.success) == ["owner is signed in with the password only."]
    click(at, "Turn two-factor authentication on")
    assert texts(at.success)[0].startswith("Two-factor authentication is on.")

    # alex enrolls with the code of the virtual phone.
    choose(at, "alex")
    click(at, "Submit password")
    assert at.info[-1].value.startswith("Password accepted for alex.")
    phone_code = metric(at, "Code on alex's phone")
    assert phone_code == sandbox.phone_code("alex")
    click(at, "Use the phone's code")
    assert texts(at.success) == [
        f"alex is signed in with password and code {phone_code}."
    ]

    # The same code again is a replay.
    click(at, "Try a replay")
    outcome = at.session_state[flow.OUTCOME]
    assert outcome.text.startswith(
        f"The replayed code {phone_code} of alex was rejected"
    )
    assert "That code was already used." in outcome.text

    # The owner resets alex, who has no secret any more.
    click(at, "Reset alex")
    assert at.success[0].value.startswith("The owner reset the enrollment of alex")
    assert sandbox.secret_of("alex") is None
    users = at.dataframe[0].value.set_index("Username")
    assert users.loc["alex", "State"] == "not enrolled"

    # Turning two-factor off, and every move before, is in the audit trail.
    click(at, "Turn two-factor authentication off")
    assert texts(at.success)[0].startswith("Two-factor authentication is off.")
    events = at.dataframe[1].value
    assert {"setting_changed", "replay_rejected", "enrollment_reset"} <= set(
        events["Event"]
    )


def test_explorer_phone_offset_and_typed_code(core_ctx):
    at = explorer()
    choose(at, "owner")
    click(at, "Submit password")
    click(at, "Turn two-factor authentication on")
    choose(at, "alex")
    click(at, "Submit password")
    sandbox = at.session_state[flow.SANDBOX]

    widget(at.slider, "Phone clock offset (s)").set_value(-90).run()
    late = metric(at, "Code on alex's phone")
    assert late == sandbox.phone_code("alex", -90)
    widget(at.text_input, "Authentication code").input(late)
    click(at, "Verify")
    assert len(at.error) == 1
    assert at.error[0].value.startswith(
        f"Code '{late}' rejected: That code is not correct."
    )

    widget(at.slider, "Phone clock offset (s)").set_value(0).run()
    widget(at.text_input, "Authentication code").input(
        metric(at, "Code on alex's phone")
    )
    click(at, "Verify")
    assert at.success[0].value.startswith("alex is signed in with password and code")


def test_event_counts_per_hour_or_day():
    hour = 60 * 60
    start = 1_800_000_000  # 2027-01-15 08:00:00 UTC
    events = [
        AuditEvent(at=start, event="signed_in", actor_kind="user", outcome="success"),
        AuditEvent(
            at=start + 60, event="signed_in", actor_kind="user", outcome="success"
        ),
        AuditEvent(
            at=start + 2 * hour,
            event="code_locked",
            actor_kind="user",
            outcome="rejected",
        ),
    ]

    counts, title = tables.event_counts(events)
    assert title == "Hour (UTC)"
    assert counts.to_dict("records") == [
        {"Bucket": "2027-01-15 08:00", "Event": "signed_in", "Events": 2},
        {"Bucket": "2027-01-15 10:00", "Event": "code_locked", "Events": 1},
    ]

    events.append(
        AuditEvent(
            at=start + 72 * hour,
            event="signed_in",
            actor_kind="user",
            outcome="success",
        )
    )
    counts, title = tables.event_counts(events)
    assert title == "Day (UTC)"
    assert counts.to_dict("records") == [
        {"Bucket": "2027-01-15", "Event": "code_locked", "Events": 1},
        {"Bucket": "2027-01-15", "Event": "signed_in", "Events": 2},
        {"Bucket": "2027-01-18", "Event": "signed_in", "Events": 1},
    ]
