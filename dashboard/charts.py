"""Altair charts of the enrollment overview and the audit log, with UTC time axes.

Vega-Lite formats times in the browser's time zone unless the scale or the
time unit specifies UTC, so every time encoding here specifies it.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from dashboard.tables import OVERVIEW_STATES

# An audit log that spans more than this many hours is counted per day, not per hour.
HOURLY_SPAN_HOURS = 48


def enrollment_chart(history: pd.DataFrame) -> alt.Chart:
    """Stack the users enrolled, pending and not started over time.

    The counts change only at the history's points, so the areas are drawn
    as steps instead of slopes between points.
    """
    return (
        alt.Chart(history)
        .mark_area(interpolate="step-after")
        .encode(
            x=alt.X("Time:T", title="Time (UTC)", scale=alt.Scale(type="utc")),
            y=alt.Y("Users:Q", stack="zero", title="Internal users"),
            color=alt.Color(
                "State:N", sort=list(OVERVIEW_STATES.values()), title="State"
            ),
            tooltip=[
                alt.Tooltip(
                    "Time:T",
                    timeUnit="utcyearmonthdatehoursminutesseconds",
                    title="Time (UTC)",
                ),
                "State:N",
                "Users:Q",
            ],
        )
    )


def time_unit_for(times: pd.Series) -> tuple[str, str]:
    """Return the Vega-Lite time unit and its axis title for counting these times."""
    if times.empty:
        return "utcyearmonthdatehours", "Hour (UTC)"
    span = times.max() - times.min()
    if span <= pd.Timedelta(hours=HOURLY_SPAN_HOURS):
        return "utcyearmonthdatehours", "Hour (UTC)"
    return "utcyearmonthdate", "Day (UTC)"


def event_chart(event_times: pd.DataFrame) -> alt.Chart:
    """Count audit events per hour or per day, stacked by event name."""
    unit, title = time_unit_for(event_times["Time"])
    return (
        alt.Chart(event_times)
        .mark_bar()
        .encode(
            x=alt.X("Time:T", timeUnit=unit, title=title),
            y=alt.Y("count():Q", title="Events"),
            color=alt.Color("Event:N", title="Event"),
            tooltip=[
                alt.Tooltip("Time:T", timeUnit=unit, title=title),
                "Event:N",
                alt.Tooltip("count():Q", title="Events"),
            ],
        )
    )
