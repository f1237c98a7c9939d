"""How far the internal users of the Master Admin's portal are with enrollment."""

from __future__ import annotations

import streamlit as st

from core import reports
from core.errors import PermissionDenied
from core.messages import format_time
from dashboard import state
from dashboard.charts import enrollment_chart
from dashboard.context import get_context
from dashboard.format import as_sentence
from dashboard.tables import overview_history


def render() -> None:
    ctx = get_context()
    user = st.session_state[state.USER]
    token = st.session_state[state.SESSION]

    st.title("Enrollment overview")
    st.write(
        "Active internal users by enrollment state since two-factor authentication "
        "was last turned on: enrolled (code confirmed), pending (QR code shown, "
        "first code not yet entered) and not started."
    )

    try:
        overview = reports.enrollment_overview(
            ctx, reports.Viewer(session=token), user.portal_slug
        )
    except PermissionDenied as error:
        st.error(as_sentence(str(error)))
        return

    if not overview.two_factor_enabled:
        st.info(
            f"Two-factor authentication is off, so nobody is enrolled. "
            f"{overview.not_started} internal user(s) will enroll at their next "
            "sign-in once it is turned on under Internal settings."
        )
        return

    enrolled, pending, not_started = st.columns(3)
    enrolled.metric("Enrolled", overview.enrolled)
    pending.metric("Pending", overview.pending)
    not_started.metric("Not started", overview.not_started)
    st.caption(
        f"Two-factor authentication on since {format_time(overview.enabled_since)}."
    )

    st.altair_chart(
        enrollment_chart(overview_history(overview.history)),
        alt="Internal users enrolled, pending and not started over time",
    )


if __name__ == "__main__":
    render()
