"""The audit log with filters, a table, a chart of events over time and a CSV download.

A Master Admin reads the audit log of their own portal. A signed-in support
operator reads every portal and may pick one. When a browser session has
both, the operator's view is shown. The core checks who may read what.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import streamlit as st

from core import reports, support
from core.audit import Event
from core.context import Context
from core.errors import InvalidValue, NotFound, PermissionDenied
from core.models import AuditEvent
from dashboard import state
from dashboard.charts import event_chart
from dashboard.context import get_context
from dashboard.format import as_sentence, escape_markdown
from dashboard.tables import audit_table, event_counts

ALL_PORTALS = "All portals"
ALL_EVENTS = "All events"
DAY_SECONDS = 24 * 60 * 60
DEFAULT_LIMIT = 1000


@dataclass(frozen=True)
class Filters:
    """The arguments of reports.audit_events that the visitor chose."""

    portal_slug: str | None
    username: str | None
    event: str | None
    since: int | None
    until: int | None
    limit: int


def render() -> None:
    ctx = get_context()
    user = st.session_state[state.USER]
    operator = st.session_state[state.OPERATOR]

    st.title("Audit log")
    if operator is not None:
        viewer = reports.Viewer(
            operator_session=st.session_state[state.OPERATOR_SESSION]
        )
        st.write(
            "Security events of every portal, newest first, as support operator "
            f"**{escape_markdown(operator.name)}**. Audit rows contain names, "
            "outcomes and reasons, never a secret, code or password."
        )
        portal_slug = choose_portal(ctx, viewer.operator_session)
    else:
        viewer = reports.Viewer(session=st.session_state[state.SESSION])
        st.write(
            f"Security events of portal **{escape_markdown(user.portal_name)}**, newest "
            "first. Audit rows contain names, outcomes and reasons, never a secret, "
            "code or password."
        )
        portal_slug = user.portal_slug

    filters = choose_filters(portal_slug)
    try:
        events = reports.audit_events(
            ctx,
            viewer,
            portal_slug=filters.portal_slug,
            username=filters.username,
            event=filters.event,
            since=filters.since,
            until=filters.until,
            limit=filters.limit,
        )
    except (InvalidValue, NotFound, PermissionDenied) as error:
        st.error(as_sentence(str(error)))
        return

    show_events(events, filters)


def choose_portal(ctx: Context, operator_session: str) -> str | None:
    """Show an operator's portal filter and return the chosen slug, or None for all."""
    portals = support.find_portals(ctx, operator_session)
    names = {portal.slug: portal.name for portal in portals}
    choice = st.selectbox(
        "Portal",
        [ALL_PORTALS, *names],
        format_func=lambda slug: (
            slug if slug == ALL_PORTALS else f"{slug} ({names[slug]})"
        ),
    )
    return None if choice == ALL_PORTALS else choice


def choose_filters(portal_slug: str | None) -> Filters:
    user_column, event_column = st.columns(2)
    username = user_column.text_input(
        "Username", help="Matches events in which this user acted or was the target."
    )
    event = event_column.selectbox(
        "Event", [ALL_EVENTS, *(str(item) for item in Event)]
    )

    start_column, end_column, limit_column = st.columns(3)
    start = start_column.date_input("From (UTC)", value=None, format="YYYY-MM-DD")
    end = end_column.date_input("To (UTC)", value=None, format="YYYY-MM-DD")
    limit = limit_column.number_input(
        "Maximum rows",
        min_value=1,
        max_value=reports.MAX_AUDIT_ROWS,
        value=DEFAULT_LIMIT,
        step=100,
    )
    return Filters(
        portal_slug=portal_slug,
        username=username.strip() or None,
        event=None if event == ALL_EVENTS else event,
        since=None if start is None else day_start(start),
        until=None if end is None else day_start(end) + DAY_SECONDS - 1,
        limit=int(limit),
    )


def day_start(day: datetime.date) -> int:
    """Return the Unix seconds of midnight UTC at the start of ``day``."""
    midnight = datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)
    return int(midnight.timestamp())


def show_events(events: list[AuditEvent], filters: Filters) -> None:
    if not events:
        st.info("No audit event matches these filters.")
        return

    table = audit_table(events)
    summary = f"{len(events)} event(s), newest first."
    if len(events) == filters.limit:
        summary += " There may be more: raise Maximum rows or narrow the filters."
    st.caption(summary)
    st.dataframe(table, hide_index=True)

    counts, bucket_title = event_counts(events)
    st.altair_chart(
        event_chart(counts, bucket_title),
        alt="Number of audit events per hour or per day, by event",
    )
    st.download_button(
        "Download CSV",
        data=table.to_csv(index=False),
        file_name=f"audit-log-{filters.portal_slug or 'all-portals'}.csv",
        mime="text/csv",
        on_click="ignore",
    )


if __name__ == "__main__":
    render()
