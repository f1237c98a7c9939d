"""The sign-in page: the password form, then enrollment or code entry when the core requires it."""

from __future__ import annotations

import streamlit as st

from core import signin
from core.context import Context
from core.signin import Status
from dashboard import state
from dashboard.context import get_context, has_portal
from dashboard.screens import code_entry, enrollment
from dashboard.screens.code_step import show_rejection

NEXT_STEP = {
    Status.ENROLLMENT_REQUIRED: state.Step.ENROLLMENT,
    Status.CODE_REQUIRED: state.Step.CODE,
}


def render() -> None:
    ctx = get_context()
    step = st.session_state[state.STEP]
    challenge = st.session_state[state.CHALLENGE]

    if step == state.Step.ENROLLMENT and challenge:
        enrollment.render(ctx, challenge)
    elif step == state.Step.CODE and challenge:
        code_entry.render(ctx, challenge)
    else:
        password_form(ctx)


def password_form(ctx: Context) -> None:
    st.title("Sign in")
    st.write(
        "Sign in with your portal, username and password. Internal users then "
        "confirm with a code from their authenticator app."
    )
    state.show_notice()

    if not has_portal(ctx):
        st.info(
            "No portal exists yet. Run `twofa demo-seed` to create the demo portal, "
            "then reload this page."
        )
        return

    # The form is cleared after each submit so that no password stays in the field.
    with st.form("password_form", clear_on_submit=True):
        portal = st.text_input(
            "Portal", value=st.session_state[state.PORTAL], key="portal_input"
        )
        username = st.text_input("Username", autocomplete="username")
        password = st.text_input(
            "Password", type="password", autocomplete="current-password"
        )
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return

    portal = portal.strip()
    st.session_state[state.PORTAL] = portal
    result = signin.submit_password(ctx, portal, username.strip(), password)

    if result.status == Status.SIGNED_IN:
        state.finish_sign_in(result.session)
        st.rerun()
    if result.status in NEXT_STEP:
        state.open_challenge(NEXT_STEP[result.status], result.challenge)
        st.rerun()

    show_rejection(ctx, result)


if __name__ == "__main__":
    render()
