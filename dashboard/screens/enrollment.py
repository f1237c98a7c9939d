"""The enrollment screen: the pending secret as a QR code and as text, then the first code."""

from __future__ import annotations

import streamlit as st

from core import signin
from core.context import Context
from core.errors import NotSignedIn
from core.messages import format_time, format_wait
from dashboard import state
from dashboard.format import escape_markdown
from dashboard.screens.code_step import code_form, submit_code

FRIENDLY_NAME_HINT = (
    "Some apps, such as Microsoft Authenticator and Authy, ask for a friendly name "
    "for the entry. Any name that you will recognise works, for example the portal name."
)


def render(ctx: Context, challenge: str) -> None:
    st.title("Set up two-factor authentication")
    st.write(
        "Your portal requires a code from an authenticator app at every sign-in. "
        "Add this account to the app once, then confirm with the first code it shows."
    )

    # The core returns the same pending secret on every call, so a rerun shows the
    # same QR code and nothing needs to be kept in the session.
    try:
        offer = signin.enrollment_offer(ctx, challenge)
    except NotSignedIn:
        state.back_to_password_form(
            state.Notice(
                "error",
                "This sign-in or its QR code expired before the code was confirmed. "
                "Sign in again.",
            )
        )
        st.rerun()

    qr_column, key_column = st.columns([2, 3])
    with qr_column:
        st.image(offer.qr_png(), caption="Scan this with your authenticator app.")
    with key_column:
        st.write("If you cannot scan it, type this key into the app:")
        st.code(offer.grouped_secret, language=None)
        st.markdown(
            f"Account: **{escape_markdown(offer.account)}**  \n"
            f"Issuer: **{escape_markdown(offer.issuer)}**"
        )
        st.caption(FRIENDLY_NAME_HINT)

    wait = format_wait(offer.expires_at - ctx.now())
    st.caption(
        f"This QR code expires in {wait}, at {format_time(offer.expires_at)}. "
        f"If this sign-in expires first (after {signin.CHALLENGE_SECONDS // 60} min), "
        "sign in again to see the same code."
    )

    code = code_form("enrollment_code_form")
    if code is not None:
        submit_code(ctx, challenge, code)
