"""The result of a scenario run, and progress reporting while it runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

# Called with (units done, units in total); a unit is a scenario's own piece of work.
ProgressCallback = Callable[[int, int], None]


@dataclass
class Result:
    """Tables and findings of one scenario run.

    ``events`` has one row per simulated action, ``summary`` one row per
    simulation step of the scenario (a day, a snapshot time or a case), and
    ``tables`` holds the scenario's further tables by name. ``report`` holds
    the scenario, seed, parameters, key findings and checks, as plain values.
    None of them contain wall-clock time, so the same seed gives the same result.
    """

    events: pd.DataFrame
    summary: pd.DataFrame
    report: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


class Progress:
    """Count work units and pass the count to an optional callback, at most about 200 times."""

    def __init__(self, callback: ProgressCallback | None, total: int) -> None:
        self.callback = callback
        self.total = max(int(total), 1)
        self.done = 0
        self._every = max(self.total // 200, 1)
        self._reported = 0

    def advance(self, units: int = 1) -> None:
        self.done = min(self.done + units, self.total)
        if self.callback is None:
            return
        if self.done - self._reported >= self._every or self.done == self.total:
            self._reported = self.done
            self.callback(self.done, self.total)

    def finish(self) -> None:
        """Report the total as done, even when the run needed fewer units than planned."""
        self.advance(self.total - self.done)
