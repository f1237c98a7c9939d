"""The ``simulate`` sub-command: run a scenario and write its CSV, JSON and HTML files.

``twofa simulate SCENARIO --seed N --out DIR [--users N] [--days N] ...``
shows a progress bar on standard error and writes ``SCENARIO-events.csv``,
``SCENARIO-summary.csv``, one CSV per further table, ``SCENARIO-report.json``
and the self-contained ``SCENARIO-report.html`` into DIR.

Exit status: 0 when the run finished, 1 when an invariant broke or a model
disagreed with the core (the details go to ``SCENARIO-violation.json``), 2 on
bad usage. The simulator opens its own databases, so the handler takes no
core Context. Run ``python -m simulations.cli simulate --help`` for the options.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from simulations import SCENARIOS, params, run, scenario_module
from simulations.errors import (
    InvalidParameter,
    InvariantViolation,
    ModelMismatch,
    SimulationError,
)
from simulations.report import write_outputs

EXIT_OK = 0
EXIT_BROKEN = 1
EXIT_USAGE = 2


def scenario_options() -> dict[str, dict[str, tuple[params.Spec, int | float]]]:
    """Return, per parameter name, each scenario's Spec and default for it."""
    options: dict[str, dict[str, tuple[params.Spec, int | float]]] = {}
    for scenario in SCENARIOS:
        module = scenario_module(scenario)
        for name, found in params.specs(module.Parameters).items():
            options.setdefault(name, {})[scenario] = found
    return options


def add_parser(subparsers: Any) -> None:
    """Add the ``simulate`` sub-command, whose handler is ``run_command(args)``."""
    parser = subparsers.add_parser(
        "simulate",
        help="run a QA scenario against the core with a simulated clock",
        description=(
            "Run a scenario on a private database with a simulated clock and write "
            "CSV files, a JSON report and an HTML report with charts. The same seed "
            "gives the same files."
        ),
    )
    parser.add_argument("scenario", choices=list(SCENARIOS), help="scenario to run")
    parser.add_argument(
        "--seed", type=int, default=1, help="seed of the random draws (default 1)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for the output files"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="do not show the progress bar"
    )
    for name, by_scenario in scenario_options().items():
        spec, default = next(iter(by_scenario.values()))
        defaults = ", ".join(
            f"{scenario} {value}" for scenario, (_, value) in by_scenario.items()
        )
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=int if isinstance(default, int) else float,
            default=None,
            help=f"{spec.help} (default: {defaults})",
        )
    parser.set_defaults(handler=run_command)


def chosen_parameters(args: argparse.Namespace) -> dict[str, int | float]:
    """Return the scenario parameters given on the command line; reject those of other scenarios."""
    allowed = params.specs(scenario_module(args.scenario).Parameters)
    chosen = {}
    for name in scenario_options():
        value = getattr(args, name, None)
        if value is None:
            continue
        if name not in allowed:
            option = "--" + name.replace("_", "-")
            raise InvalidParameter(
                f"{option} does not apply to scenario {args.scenario}; it takes "
                + ", ".join("--" + key.replace("_", "-") for key in allowed)
            )
        chosen[name] = value
    return chosen


def run_command(args: argparse.Namespace) -> int:
    """Run the scenario named in ``args`` and write its files; return the exit status."""
    try:
        chosen = chosen_parameters(args)
        params.build(scenario_module(args.scenario).Parameters, chosen)
    except InvalidParameter as error:
        print(f"twofa simulate: {error}", file=sys.stderr)
        return EXIT_USAGE

    bar = (
        None
        if args.no_progress
        else tqdm(desc=args.scenario, unit="unit", file=sys.stderr, leave=True)
    )

    def on_progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        result = run(
            args.scenario,
            seed=args.seed,
            on_progress=None if bar is None else on_progress,
            **chosen,
        )
    except InvalidParameter as error:
        print(f"twofa simulate: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (InvariantViolation, ModelMismatch, SimulationError) as error:
        write_failure(args.out, args.scenario, error)
        print(f"twofa simulate: {error}", file=sys.stderr)
        return EXIT_BROKEN
    finally:
        if bar is not None:
            bar.close()

    for path in write_outputs(result, args.out):
        print(path)
    return EXIT_OK


def write_failure(folder: Path, scenario: str, error: SimulationError) -> Path:
    """Write what stopped a run to ``SCENARIO-violation.json``; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    details: dict[str, Any] = {"scenario": scenario, "error": type(error).__name__}
    if isinstance(error, InvariantViolation):
        details.update(error.as_dict())
    else:
        details["message"] = str(error)
    path = folder / f"{scenario}-violation.json"
    path.write_text(json.dumps(details, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``simulate`` alone, as ``python -m simulations.cli simulate ...``."""
    parser = argparse.ArgumentParser(prog="twofa")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_parser(commands)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
