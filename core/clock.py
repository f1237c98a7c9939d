"""Clocks in integer Unix seconds, so that tests and simulations can move time."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Source of the current time in whole Unix seconds (UTC, no local time)."""

    def now(self) -> int: ...


class SystemClock:
    """The machine's clock, truncated to whole seconds."""

    def now(self) -> int:
        return int(time.time())


class ManualClock:
    """A clock that moves only when a caller sets or advances it, for tests and simulations."""

    def __init__(self, start: int) -> None:
        self._now = int(start)

    def now(self) -> int:
        return self._now

    def set(self, seconds: int) -> None:
        self._now = int(seconds)

    def advance(self, seconds: int) -> None:
        self._now += int(seconds)
