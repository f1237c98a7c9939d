"""The landing page of a signed-in user: who is signed in, and the sign-out button."""

from __future__ import annotations

import streamlit as st

from core import signin
from core.messages import format_time
from dashboard import state
from dashboard.context import get_context
from dashboard.format import escape_markdown, profile_label


def render() -> None:
    ctx = get_context()
    user = st.session_state[state.USER]

    st.title("Signed in")
    st.write(
        "You are signed in to the billing portal. Pages for your profile will "
        "appear in the menu as they are added."
    )

    method = "password and authentication code" if user.with_code else "password only"
    st.markdown(
        f"- Username: **{escape_markdown(user.username)}**\n"
        f"- Portal: **{escape_markdown(user.portal_name)}** "
        f"({escape_markdown(user.portal_slug)})\n"
        f"- Profile: **{escape_markdown(profile_label(user))}**\n"
        f"- Signed in with: **{method}**\n"
        f"- Session ends: {format_time(user.expires_at)}"
    )

    if st.button("Sign out"):
        signin.sign_out(ctx, st.session_state[state.SESSION])
        state.forget_session(state.Notice("info", "You are signed out."))
        st.rerun()
