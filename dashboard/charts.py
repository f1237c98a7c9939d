"""Altair charts of the enrollment overview and the audit log, with times in UTC.

Vega-Lite formats times in the browser's time zone unless the scale is of
type utc. So the enrollment chart uses a utc scale, and the audit chart
labels its buckets with UTC text.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from dashboard.tables import OVERVIEW_STATES

# Colours of the states enrolled, pending and not started, in that order.
STATE_COLOURS = ["#2e7d32", "#f9a825", "#9e9e9e"]


def enrollment_chart(history: pd.DataFrame) -> alt.Chart:
    """Stack the users enrolled, pending and not started over time, enrolled at the bottom.

    The counts change only at the history's points, so the areas are drawn
    as steps instead of slopes between points.
    """
    states = list(OVERVIEW_STATES.values())
    return (
        alt.Chart(history)
        .transform_calculate(stack_order=f"indexof({states!r}, datum.State)")
        .mark_area(interpolate="step-after")
        .encode(
            x=alt.X("Time:T", title="Time (UTC)", scale=alt.Scale(type="utc")),
            y=alt.Y(
                "Users:Q",
                stack="zero",
                title="Internal users",
                axis=alt.Axis(tickMinStep=1, format="d"),
            ),
            color=alt.Color(
                "State:N",
                title="State",
                scale=alt.Scale(domain=states, range=STATE_COLOURS),
            ),
            order=alt.Order("stack_order:Q"),
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


def event_chart(counts: pd.DataFrame, bucket_title: str) -> alt.Chart:
    """Draw audit event counts per time bucket as bars stacked by event name.

    ``counts`` comes from tables.event_counts. The buckets are labels in UTC,
    so only buckets with events get a bar.
    """
    return (
        alt.Chart(counts)
        .mark_bar()
        .encode(
            x=alt.X("Bucket:O", title=bucket_title, sort="ascending"),
            y=alt.Y(
                "Events:Q", title="Events", axis=alt.Axis(tickMinStep=1, format="d")
            ),
            color=alt.Color("Event:N", title="Event"),
            tooltip=[
                alt.Tooltip("Bucket:O", title=bucket_title),
                "Event:N",
                "Events:Q",
            ],
        )
    )
