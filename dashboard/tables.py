"""pandas tables built from core results, for st.dataframe, charts and CSV export.

Times come from the core as Unix seconds. Tables show them as UTC text with
core.messages.format_time. Chart data carries them as UTC datetimes, or as UTC
text where a chart counts events per hour or day.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from pandas.api.types import is_object_dtype, is_string_dtype

from core.admin import UserState
from core.messages import format_time
from core.models import AuditEvent
from core.reports import OverviewPoint

USER_COLUMNS = [
    "Username",
    "Kind",
    "Profile",
    "Active",
    "State",
    "Pending since",
    "Active since",
    "Last code at",
    "Drift (time steps)",
    "Failures",
    "Locked until",
]
AUDIT_COLUMNS = [
    "ID",
    "Time",
    "Unix time",
    "Portal",
    "Actor kind",
    "Actor",
    "Target",
    "Event",
    "Outcome",
    "Reason",
    "Detail",
]
# Audit events that span more than this many hours are counted per day, not per hour.
HOURLY_SPAN_HOURS = 48
OVERVIEW_STATES = {
    "enrolled": "Enrolled",
    "pending": "Pending",
    "not_started": "Not started",
}


def optional_time(unix_seconds: int | None) -> str:
    """Format Unix seconds as UTC text, or return an empty string for None."""
    return "" if unix_seconds is None else format_time(unix_seconds)


def user_table(states: Sequence[UserState]) -> pd.DataFrame:
    """Return one row per user, with the enrollment state and the code lock."""
    rows = [
        {
            "Username": user.username,
            "Kind": user.kind,
            "Profile": user.profile,
            "Active": user.active,
            "State": user.state,
            "Pending since": optional_time(user.pending_since),
            "Active since": optional_time(user.active_since),
            "Last code at": optional_time(user.last_code_at),
            "Drift (time steps)": user.drift,
            "Failures": user.failures,
            "Locked until": optional_time(user.locked_until),
        }
        for user in states
    ]
    return pd.DataFrame(rows, columns=USER_COLUMNS).astype(
        {"Drift (time steps)": "Int64"}
    )


def filter_rows(table: pd.DataFrame, text: str) -> pd.DataFrame:
    """Return the rows in which any text column contains ``text``, ignoring case."""
    text = text.strip()
    if not text:
        return table
    matches = pd.Series(False, index=table.index)
    for column in table.columns:
        values = table[column]
        if is_string_dtype(values) or is_object_dtype(values):
            matches |= values.astype(str).str.contains(text, case=False, regex=False)
    return table[matches]


def audit_table(events: Sequence[AuditEvent]) -> pd.DataFrame:
    """Return one row per audit event. Audit rows contain no secret, code or password."""
    rows = [
        {
            "ID": event.id,
            "Time": format_time(event.at),
            "Unix time": event.at,
            "Portal": event.portal_slug,
            "Actor kind": event.actor_kind,
            "Actor": event.actor,
            "Target": event.target,
            "Event": event.event,
            "Outcome": event.outcome,
            "Reason": event.reason,
            "Detail": event.detail,
        }
        for event in events
    ]
    return pd.DataFrame(rows, columns=AUDIT_COLUMNS)


def event_counts(events: Sequence[AuditEvent]) -> tuple[pd.DataFrame, str]:
    """Count audit events per hour, or per day when they span more than two days.

    Return the counts, with columns Bucket, Event and Events, and the title of
    the bucket axis. A bucket is the start of its hour or day as UTC text.
    """
    times = pd.to_datetime([event.at for event in events], unit="s", utc=True)
    if len(times) and times.max() - times.min() > pd.Timedelta(hours=HOURLY_SPAN_HOURS):
        buckets, title = times.floor("D").strftime("%Y-%m-%d"), "Day (UTC)"
    else:
        buckets, title = times.floor("h").strftime("%Y-%m-%d %H:00"), "Hour (UTC)"
    frame = pd.DataFrame(
        {"Bucket": buckets, "Event": [event.event for event in events]}
    )
    counts = frame.groupby(["Bucket", "Event"]).size().reset_index(name="Events")
    return counts, title


def overview_history(history: Sequence[OverviewPoint]) -> pd.DataFrame:
    """Return the enrollment history in long form: one row per time and state."""
    rows = [
        {
            "Time": pd.Timestamp(point.at, unit="s", tz="UTC"),
            "State": label,
            "Users": getattr(point, field),
        }
        for point in history
        for field, label in OVERVIEW_STATES.items()
    ]
    return pd.DataFrame(rows, columns=["Time", "State", "Users"])
