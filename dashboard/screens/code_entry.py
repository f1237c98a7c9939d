"""The code entry screen of an enrolled internal user."""

from __future__ import annotations

import streamlit as st

from core.context import Context
from dashboard import state
from dashboard.screens.code_step import code_form, submit_code


def render(ctx: Context, challenge: str) -> None:
    st.title("Enter your code")
    st.write(
        "Your password is correct. Open your authenticator app and enter the current "
        "code shown for this portal; the app shows a new one every 30 seconds."
    )

    code = code_form("code_entry_form")
    if code is not None:
        submit_code(ctx, challenge, code)

    if st.button("Sign in as someone else"):
        state.back_to_password_form()
        st.rerun()
