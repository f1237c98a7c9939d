"""The simulate sub-command, mostly run as its own process, as QA runs it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from simulations import cli
from simulations.errors import InvariantViolation

ROOT = Path(__file__).resolve().parents[1]


def simulate(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "simulations.cli", "simulate", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_writes_csv_and_html(tmp_path):
    done = simulate(
        "replay", "--seed", "4", "--out", str(tmp_path), "--users", "2", "--days", "1"
    )

    assert done.returncode == 0, done.stderr
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == [
        "replay-events.csv",
        "replay-report.html",
        "replay-report.json",
        "replay-summary.csv",
    ]
    assert (tmp_path / "replay-events.csv").read_text().startswith("trial,user,case,")
    report = json.loads((tmp_path / "replay-report.json").read_text())
    assert report["replays_accepted"] == 0
    assert report["parameters"]["users"] == 2


def test_cli_html_loads_nothing_from_network(tmp_path):
    done = simulate(
        "drift", "--seed", "4", "--out", str(tmp_path), "--users", "3", "--days", "1"
    )

    assert done.returncode == 0, done.stderr
    page = (tmp_path / "drift-report.html").read_text()
    assert "vegaEmbed(" in page
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert not re.search(r"<link[^>]*\bhref=", page)
    assert not re.search(r"""\bimport\s*\(\s*["']https?:""", page)
    assert "Acceptance by day" in page


def test_cli_rejects_option_of_other_scenario(tmp_path):
    done = simulate("drift", "--out", str(tmp_path), "--trials", "500")

    assert done.returncode == 2
    assert "--trials does not apply to scenario drift" in done.stderr
    assert not tmp_path.joinpath("drift-events.csv").exists()


@pytest.mark.parametrize("value", ["0", "100001"])
def test_cli_rejects_out_of_range(tmp_path, value):
    done = simulate("drift", "--out", str(tmp_path), "--users", value)

    assert done.returncode == 2
    assert "users must be at" in done.stderr


def test_cli_same_seed_same_csv(tmp_path):
    arguments = [
        "switch",
        "--seed",
        "9",
        "--users",
        "3",
        "--customers",
        "1",
        "--days",
        "2",
        "--switch-off-day",
        "0",
        "--switch-on-again-day",
        "1",
        "--no-progress",
    ]
    first = simulate(*arguments, "--out", str(tmp_path / "first"))
    second = simulate(*arguments, "--out", str(tmp_path / "second"))

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    for name in ("switch-events.csv", "switch-summary.csv", "switch-report.json"):
        assert (tmp_path / "first" / name).read_bytes() == (
            tmp_path / "second" / name
        ).read_bytes(), name


def test_cli_reports_broken_invariant(tmp_path, monkeypatch, capsys):
    def broken_run(*_args, **_kwargs):
        raise InvariantViolation(
            "time step accepted once", 12, 1_800_000_360, "u0001", {"accepted_step": 7}
        )

    monkeypatch.setattr(cli, "run", broken_run)
    status = cli.main(["simulate", "replay", "--out", str(tmp_path), "--no-progress"])

    assert status == cli.EXIT_BROKEN
    assert "broken at step 12" in capsys.readouterr().err
    details = json.loads((tmp_path / "replay-violation.json").read_text())
    assert details["invariant"] == "time step accepted once"
    assert details["user"] == "u0001"
    assert details["values"] == {"accepted_step": 7}
