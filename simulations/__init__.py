"""Scenario simulator: drive the core with a simulated clock and seeded random draws.

``run("drift", seed=1, users=50, days=3)`` returns a Result with pandas
DataFrames (events, summary and further tables) and a report dict. The same
scenario, seed and parameters give the same result, with one exception: the
core draws TOTP secrets from the operating system, so a code that happens to
equal the code of another time step (probability about 10^-6 per check) can
change an outcome between runs.

Scenarios: ``drift``, ``replay``, ``switch`` and ``brute-force``; each
module's docstring says what it covers and how.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from simulations import params
from simulations.errors import (
    InvalidParameter,
    InvariantViolation,
    ModelMismatch,
    SimulationError,
)
from simulations.result import ProgressCallback, Result

SCENARIOS = {
    "drift": "simulations.drift",
    "replay": "simulations.replay",
    "switch": "simulations.switch",
    "brute-force": "simulations.brute_force",
}

__all__ = [
    "SCENARIOS",
    "InvalidParameter",
    "InvariantViolation",
    "ModelMismatch",
    "Result",
    "SimulationError",
    "run",
    "scenario_module",
]


def scenario_module(name: str) -> ModuleType:
    """Return the module of a scenario; raise InvalidParameter for an unknown name."""
    if name not in SCENARIOS:
        raise InvalidParameter(
            f"scenario {name!r} is unknown; choose one of {', '.join(SCENARIOS)}"
        )
    return importlib.import_module(SCENARIOS[name])


def run(
    scenario: str,
    seed: int = 1,
    on_progress: ProgressCallback | None = None,
    **parameters: Any,
) -> Result:
    """Run a scenario with its parameters (see the module's Parameters) and return the Result.

    ``on_progress`` is called with (units done, units in total) while it runs.
    Raises InvalidParameter for a bad parameter and InvariantViolation when
    the core breaks a policy invariant.
    """
    module = scenario_module(scenario)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidParameter(f"seed must be a whole number >= 0, got {seed!r}")
    values = params.build(module.Parameters, parameters)
    return module.simulate(values, seed, on_progress)
