"""The Simulations page: run a QA scenario against the core and chart its result.

Each run uses databases of its own (in memory, or a temporary SQLite file
for the replay scenario) and a simulated clock, so it reads and changes no
portal data.
"""

from __future__ import annotations

import streamlit as st

import simulations
from simulations import SCENARIOS, params, scenario_module
from simulations.errors import InvalidParameter, SimulationError
from simulations.report import charts, csv_bytes, table_files
from simulations.result import Result

RESULT = "simulation_result"  # the Result of the last finished run, or None
SCENARIO = "simulation_scenario"
RUN_BUTTON = "simulation_run"


def render() -> None:
    st.session_state.setdefault(RESULT, None)

    st.title("Simulations")
    st.write(
        "Run a scenario against the core on a private database with a simulated "
        "clock. The same seed gives the same result."
    )
    scenario = st.selectbox("Scenario", list(SCENARIOS), key=SCENARIO)
    module = scenario_module(scenario)
    st.caption(module.__doc__.split("\n\n")[0])

    with st.form("simulation_parameters"):
        seed = st.number_input(
            "Seed", min_value=0, value=1, step=1, key="simulation_seed"
        )
        values = {
            name: parameter_input(scenario, name, spec, default)
            for name, (spec, default) in params.specs(module.Parameters).items()
        }
        submitted = st.form_submit_button("Run", type="primary", key=RUN_BUTTON)

    if submitted:
        run_scenario(scenario, int(seed), values)
    result = st.session_state[RESULT]
    if result is None:
        st.info("Set the parameters and press Run.")
        return
    show_result(result)


def parameter_input(
    scenario: str, name: str, spec: params.Spec, default: int | float
) -> int | float:
    """Show a number input for one parameter, with its range and help text."""
    label = name.replace("_", " ").capitalize()
    if isinstance(default, int):
        return st.number_input(
            label,
            min_value=None if spec.minimum is None else int(spec.minimum),
            max_value=None if spec.maximum is None else int(spec.maximum),
            value=default,
            step=1,
            help=spec.help,
            key=f"{scenario}-{name}",
        )
    return st.number_input(
        label,
        min_value=None if spec.minimum is None else float(spec.minimum),
        max_value=None if spec.maximum is None else float(spec.maximum),
        value=float(default),
        step=0.05 if (spec.maximum or 0) <= 1 else 1.0,
        help=spec.help,
        key=f"{scenario}-{name}",
    )


def run_scenario(scenario: str, seed: int, values: dict[str, int | float]) -> None:
    """Run the scenario with a progress bar and keep the result in the session state."""
    bar = st.progress(0.0, text="Starting")

    def on_progress(done: int, total: int) -> None:
        bar.progress(done / total, text=f"{done} of {total} units")

    try:
        result = simulations.run(scenario, seed=seed, on_progress=on_progress, **values)
    except InvalidParameter as error:
        bar.empty()
        st.error(f"The parameters are invalid: {error}")
        return
    except SimulationError as error:
        bar.empty()
        st.error(f"The run stopped: {error}")
        return
    bar.progress(1.0, text="Finished")
    st.session_state[RESULT] = result


def show_result(result: Result) -> None:
    report = result.report
    st.subheader(f"Result of {report['scenario']}, seed {report['seed']}")
    for chart in charts(result):
        st.altair_chart(chart)
    st.dataframe(result.summary, hide_index=True)
    with st.expander("Report"):
        st.json(report)

    for name, table in table_files(result).items():
        st.download_button(
            f"Download {name}",
            csv_bytes(table),
            file_name=name,
            mime="text/csv",
            key=f"download-{name}",
        )


if __name__ == "__main__":
    render()
