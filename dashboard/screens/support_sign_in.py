"""The sign-in of a support operator: name, password and the current code in one form.

Support operators are the vendor's staff, not portal users. They are added
on the command line with ``twofa operator add NAME``.
"""

from __future__ import annotations

import streamlit as st

from core import operators
from core.messages import format_time, format_wait
from core.operators import OperatorStatus
from dashboard import state
from dashboard.context import get_context
from dashboard.screens.code_step import CODE_LABEL


def render() -> None:
    ctx = get_context()

    st.title("Support sign-in")
    st.write(
        "For the vendor's support operators, who run guided resets for portals. "
        "Enter your operator name, your password and the current code from your "
        "authenticator app."
    )
    state.show_notice()

    # The form is cleared after each submit so that no password stays in the field.
    with st.form("operator_sign_in_form", clear_on_submit=True):
        name = st.text_input("Operator", autocomplete="username")
        password = st.text_input(
            "Password", type="password", autocomplete="current-password"
        )
        code = st.text_input(
            CODE_LABEL, autocomplete="one-time-code", placeholder="123456"
        )
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return

    # The core normalises and checks the code, so it is passed as typed.
    result = operators.sign_in_operator(ctx, name.strip(), password, code)
    if result.status == OperatorStatus.SIGNED_IN:
        state.finish_operator_sign_in(result.session)
        st.rerun()

    st.error(result.message)
    if result.status == OperatorStatus.LOCKED and result.locked_until:
        wait = format_wait(result.locked_until - ctx.now())
        st.caption(f"Time left: {wait} (until {format_time(result.locked_until)}).")


if __name__ == "__main__":
    render()
