"""Exceptions of the simulator: bad parameters, broken invariants and model mismatches."""

from __future__ import annotations

from typing import Any


class SimulationError(Exception):
    """Base class of every error raised on purpose by the simulator."""


class InvalidParameter(SimulationError, ValueError):
    """A scenario parameter is missing, unknown or out of range."""


class InvariantViolation(SimulationError):
    """The core broke a policy invariant during a run, which stops the run.

    ``step`` counts the scenario's actions from 1, ``time`` is the simulated
    Unix time, and ``values`` holds the numbers that show the breach. The
    values never include a secret or a code.
    """

    def __init__(
        self,
        invariant: str,
        step: int,
        time: int,
        user: str | None,
        values: dict[str, Any],
    ) -> None:
        self.invariant = invariant
        self.step = step
        self.time = time
        self.user = user
        self.values = dict(values)
        shown = ", ".join(f"{name}={value!r}" for name, value in self.values.items())
        super().__init__(
            f"invariant {invariant!r} broken at step {step} (time {time}) "
            f"for user {user!r}: {shown}"
        )

    def as_dict(self) -> dict[str, Any]:
        """Return the breach as plain values, for a report file."""
        return {
            "invariant": self.invariant,
            "step": self.step,
            "time": self.time,
            "user": self.user,
            "values": self.values,
        }


class ModelMismatch(SimulationError):
    """A model that stands in for the core gave another outcome than the core did."""
