"""A discrete-event scheduler: one generator per actor, run in simulated time order.

An actor is a generator that yields the number of seconds it waits before it
acts again. The scheduler sets the shared ManualClock to the time of each
resumption, so every core call an actor makes reads the simulated time.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Generator

from core.clock import ManualClock

Actor = Generator[int, None, None]


class Scheduler:
    """Resume actors in order of their wake-up time, on one ManualClock.

    Actors due at the same second resume in the order in which they were
    scheduled, so a run is repeatable. ``actions`` counts the resumptions and
    serves as the step number in invariant reports.
    """

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.actions = 0
        self._queue: list[tuple[int, int, Actor]] = []
        self._order = itertools.count()

    def start(self, actor: Actor, at: int | None = None) -> None:
        """Schedule a new actor to run first at Unix time ``at`` (default: now)."""
        when = self.clock.now() if at is None else int(at)
        if when < self.clock.now():
            raise ValueError(
                f"start time {when} is before the clock ({self.clock.now()})"
            )
        heapq.heappush(self._queue, (when, next(self._order), actor))

    def run(self, until: int | None = None) -> None:
        """Run actors until none is left, or until the next one is due after ``until``."""
        queue = self._queue
        clock = self.clock
        while queue:
            when, _, actor = queue[0]
            if until is not None and when > until:
                break
            heapq.heappop(queue)
            clock.set(when)
            self.actions += 1
            try:
                wait = next(actor)
            except StopIteration:
                continue
            if wait < 0:
                raise ValueError(f"an actor asked to wait {wait} s; waits must be >= 0")
            heapq.heappush(queue, (when + int(wait), next(self._order), actor))
        if until is not None and until > clock.now():
            clock.set(until)
