"""The dashboard's Simulations page, run through Streamlit's AppTest."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from simulations.result import Result


def simulations_page() -> None:
    from dashboard.screens import simulations as screen

    screen.render()


def start_page() -> AppTest:
    at = AppTest.from_function(simulations_page, default_timeout=120)
    at.run()
    assert not at.exception
    return at


def test_page_asks_for_parameters():
    at = start_page()

    assert at.title[0].value == "Simulations"
    assert at.selectbox(key="simulation_scenario").value == "drift"
    assert at.number_input(key="drift-users").value == 50
    assert at.info[0].value == "Set the parameters and press Run."


def test_page_runs_scenario_and_offers_csv():
    at = start_page()
    at.number_input(key="drift-users").set_value(3)
    at.number_input(key="drift-days").set_value(1)
    at.button(key="simulation_run").click()
    at.run()

    assert not at.exception
    assert not at.error
    result = at.session_state["simulation_result"]
    assert isinstance(result, Result)
    assert result.report["parameters"]["users"] == 3
    assert len(at.get("vega_lite_chart")) == 2
    assert len(at.dataframe) == 1
    downloads = [button.label for button in at.get("download_button")]
    assert "Download drift-events.csv" in downloads
    assert "Download drift-summary.csv" in downloads


def test_page_switches_scenario():
    at = start_page()
    at.selectbox(key="simulation_scenario").set_value("replay")
    at.run()
    at.number_input(key="replay-users").set_value(2)
    at.number_input(key="replay-days").set_value(1)
    at.button(key="simulation_run").click()
    at.run()

    assert not at.exception
    result = at.session_state["simulation_result"]
    assert result.report["scenario"] == "replay"
    assert result.report["replays_accepted"] == 0
