"""The flow explorer: sign-in, enrollment, replay, the switch and a reset, on a sandbox.

For product people, and open to every visitor. Each browser session gets a
sandbox portal with its own in-memory database and a clock that moves only
on request, so nothing here reads or changes real data.
"""

from __future__ import annotations

import streamlit as st

from core import admin, totp
from core.messages import format_time
from core.sandbox import SANDBOX_ACCOUNTS, SANDBOX_PORTAL, SANDBOX_PORTAL_NAME, Sandbox
from dashboard import flow
from dashboard.screens.code_step import CODE_LABEL
from dashboard.tables import audit_table, user_table

# Labels and seconds of the buttons that move the sandbox clock.
TIME_MOVES = {"−30 s": -30, "+10 s": 10, "+30 s": 30, "+5 min": 5 * 60, "+1 h": 60 * 60}
MAX_PHONE_OFFSET_SECONDS = 300
RESET_TARGET = "alex"
PROFILES = {"owner": "Master Admin", "alex": "Standard", "casey": "customer"}


def render() -> None:
    sandbox = flow.current_sandbox()

    st.title("Flow explorer")
    st.write(
        f"Try the two-factor flows on **{SANDBOX_PORTAL_NAME}**, a sandbox portal of "
        "your own with users owner (Master Admin), alex (Standard) and casey "
        "(customer). It has its own database and a clock that moves only when you "
        "press a button, so nothing here touches real data. The explorer types each "
        "user's sandbox password for you."
    )
    if st.button("Start over", help="Recreate the sandbox as new: two-factor off."):
        flow.start_over()
        st.rerun()

    time_section(sandbox)
    username = st.selectbox(
        "Sandbox user",
        list(SANDBOX_ACCOUNTS),
        format_func=lambda name: f"{name} ({PROFILES.get(name, '')})",
    )
    code = authenticator_section(sandbox, username)

    st.divider()
    show_outcome()
    sign_in_section(sandbox, username, code)
    replay_section(sandbox)
    owner_section(sandbox)

    st.divider()
    portal_section(sandbox)


def time_section(sandbox: Sandbox) -> None:
    now = sandbox.clock.now()
    period = totp.DEFAULT_PERIOD
    st.subheader("Simulated time")
    st.markdown(f"**{format_time(now)}**")
    st.caption(
        f"Time step {totp.time_step(now)}, with {period - now % period} s left in it. "
        "Codes change at each new time step."
    )
    for column, (label, seconds) in zip(
        st.columns(len(TIME_MOVES)), TIME_MOVES.items(), strict=True
    ):
        if column.button(label):
            sandbox.clock.advance(seconds)
            st.rerun()


def authenticator_section(sandbox: Sandbox, username: str) -> str | None:
    """Show the code on the user's virtual phone and return it, or None without a secret."""
    st.subheader("Virtual authenticator")
    offset = st.slider(
        "Phone clock offset (s)",
        min_value=-MAX_PHONE_OFFSET_SECONDS,
        max_value=MAX_PHONE_OFFSET_SECONDS,
        value=0,
        step=5,
        help="How many seconds the phone's clock is ahead of the sandbox clock "
        "(negative: behind). The core accepts codes one time step either side and "
        "remembers a drifting phone.",
    )
    code = sandbox.phone_code(username, offset)
    if code is None:
        st.info(
            f"{username}'s phone has no entry for the sandbox portal, because "
            f"{username} has no pending or active enrollment."
        )
        return None

    phone_now = sandbox.clock.now() + offset
    period = totp.DEFAULT_PERIOD
    st.metric(f"Code on {username}'s phone", code)
    st.caption(
        f"{period - phone_now % period} s left before the phone shows the next code."
    )
    return code


def show_outcome() -> None:
    outcome = st.session_state[flow.OUTCOME]
    if outcome is None:
        return
    if outcome.level == "error":
        st.error(outcome.text)
    elif outcome.level == "success":
        st.success(outcome.text)
    else:
        st.info(outcome.text)


def sign_in_section(sandbox: Sandbox, username: str, code: str | None) -> None:
    st.subheader(f"Sign in as {username}")
    challenge = st.session_state[flow.CHALLENGE]
    if challenge is None or challenge.username != username:
        if challenge is not None:
            st.caption(
                f"The sign-in of {challenge.username} waits for a code: choose "
                f"{challenge.username} as sandbox user to finish it."
            )
        if st.button("Submit password"):
            flow.submit_password(sandbox, username)
            st.rerun()
        return

    if challenge.enrolling:
        st.write(
            f"{username} must enroll. A real sign-in now shows a QR code; the virtual "
            "phone has added the entry already. Confirm with the first code it shows."
        )
    else:
        st.write(f"{username} is enrolled: enter the code that the phone shows now.")

    phone_column, cancel_column = st.columns(2)
    if phone_column.button("Use the phone's code", disabled=code is None):
        flow.submit_code(sandbox, challenge, code)
        st.rerun()
    if cancel_column.button("Cancel sign-in"):
        st.session_state[flow.CHALLENGE] = None
        st.rerun()

    with st.form("flow_code_form", clear_on_submit=True):
        typed = st.text_input(CODE_LABEL, placeholder="123456")
        submitted = st.form_submit_button("Verify")
    if submitted:
        flow.submit_code(sandbox, challenge, typed)
        st.rerun()


def replay_section(sandbox: Sandbox) -> None:
    st.subheader("Replay")
    last = st.session_state[flow.LAST_ACCEPTED]
    if last is None:
        st.caption("No code was accepted yet. Sign in with a code first.")
    else:
        username, code = last
        st.caption(
            f"Signs {username} in again and submits the last accepted code, {code}, "
            "once more. The core accepts each time step of a user at most once."
        )
    if st.button("Try a replay", disabled=last is None):
        flow.try_replay(sandbox)
        st.rerun()


def owner_section(sandbox: Sandbox) -> None:
    st.subheader("As the owner")
    enabled = admin.portal_settings(sandbox.ctx, SANDBOX_PORTAL).two_factor_enabled
    owner_signed_in = flow.owner_session() is not None
    if not owner_signed_in:
        st.caption(
            "Sign in as owner, the sandbox's Master Admin, to turn two-factor "
            f"authentication on or off and to reset {RESET_TARGET}."
        )

    switch_column, reset_column = st.columns(2)
    switch_label = (
        "Turn two-factor authentication off"
        if enabled
        else "Turn two-factor authentication on"
    )
    if switch_column.button(switch_label, disabled=not owner_signed_in):
        flow.set_switch(sandbox, not enabled)
        st.rerun()
    if reset_column.button(f"Reset {RESET_TARGET}", disabled=not owner_signed_in):
        flow.reset_user(sandbox, RESET_TARGET)
        st.rerun()


def portal_section(sandbox: Sandbox) -> None:
    st.subheader("Sandbox portal")
    enabled = admin.portal_settings(sandbox.ctx, SANDBOX_PORTAL).two_factor_enabled
    signed_in = flow.signed_in_users(sandbox)
    names = ", ".join(
        f"{name} ({'password and code' if user.with_code else 'password only'})"
        for name, user in signed_in.items()
    )
    st.markdown(
        f"Two-factor authentication: **{'on' if enabled else 'off'}**  \n"
        f"Signed in: {names or 'nobody'}"
    )
    st.dataframe(user_table(flow.sandbox_users(sandbox)), hide_index=True)

    st.subheader("Audit trail")
    st.caption(f"The {flow.AUDIT_ROWS} newest audit events of the sandbox portal.")
    st.dataframe(audit_table(flow.sandbox_events(sandbox)), hide_index=True)


if __name__ == "__main__":
    render()
