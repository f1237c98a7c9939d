"""The code form and the handling of its result, shared by enrollment and code entry."""

from __future__ import annotations

import streamlit as st

from core import signin
from core.context import Context
from core.messages import format_time, format_wait
from core.signin import SignInResult, Status
from dashboard import state

CODE_LABEL = "Authentication code"


def code_form(form_key: str) -> str | None:
    """Show the code form and return the typed code when Verify was pressed, else None."""
    with st.form(form_key, clear_on_submit=True):
        code = st.text_input(
            CODE_LABEL, autocomplete="one-time-code", placeholder="123456"
        )
        submitted = st.form_submit_button("Verify", type="primary")
    return code if submitted else None


def submit_code(ctx: Context, challenge: str, code: str) -> None:
    """Send the code to the core, then move on, go back to the form, or show the rejection.

    The core normalises and checks the code, so it is passed as typed.
    """
    result = signin.submit_code(ctx, challenge, code)

    if result.status == Status.SIGNED_IN:
        state.finish_sign_in(result.session)
        st.rerun()
    if result.challenge is None:
        state.back_to_password_form(state.Notice("error", result.message))
        st.rerun()

    show_rejection(ctx, result)


def show_rejection(ctx: Context, result: SignInResult) -> None:
    """Show the core's message, and for a lock also the time left."""
    st.error(result.message)
    if result.status == Status.LOCKED and result.locked_until:
        wait = format_wait(result.locked_until - ctx.now())
        st.caption(f"Time left: {wait} (until {format_time(result.locked_until)}).")
