"""Output files of a run: CSV tables, the report as JSON, and a self-contained HTML report.

The HTML report embeds the Vega, Vega-Lite and vega-embed JavaScript that
vl-convert-python bundles (Altair's ``inline=True``), and the charts carry
their data inline, so the page loads nothing from the network. The URLs
that remain in the page are the Vega-Lite schema name and links inside the
bundled library, which the page does not fetch.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import altair as alt
import pandas as pd

from simulations import scenario_module
from simulations.result import Result

# Markers in Altair's page before which the header and the tables are inserted.
_CHARTS_MARKER = '<div class="vega-visualization"'
_END_MARKER = "</body>"
_STYLE = """<style>
body { font-family: sans-serif; margin: 2em; }
table.frame { border-collapse: collapse; font-size: 0.9em; margin-bottom: 1.5em; }
table.frame th, table.frame td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
</style>"""
# Tables longer than this show their first rows in the page; the CSV has them all.
MAX_ROWS_IN_PAGE = 200


def file_stem(result: Result) -> str:
    return str(result.report["scenario"])


def table_files(result: Result) -> dict[str, pd.DataFrame]:
    """Return every table of a result under its CSV file name."""
    stem = file_stem(result)
    files = {f"{stem}-events.csv": result.events, f"{stem}-summary.csv": result.summary}
    for name, table in result.tables.items():
        files[f"{stem}-{name}.csv"] = table
    return files


def csv_bytes(table: pd.DataFrame) -> bytes:
    """Encode a table as CSV with a fixed line ending, so equal tables give equal bytes."""
    return table.to_csv(index=False, lineterminator="\n").encode("utf-8")


def report_json(result: Result) -> str:
    return json.dumps(result.report, indent=2, sort_keys=True, default=str) + "\n"


def charts(result: Result) -> list[alt.TopLevelMixin]:
    """Return the scenario's charts for a result."""
    return scenario_module(result.report["scenario"]).charts(result)


def report_html(result: Result) -> str:
    """Build the HTML report: findings, the charts, and the summary and tables."""
    combined = alt.vconcat(*charts(result)).resolve_scale(color="independent")
    page = combined.to_html(inline=True, embed_options={"actions": False})
    if _CHARTS_MARKER not in page or _END_MARKER not in page:
        raise RuntimeError(
            "Altair's HTML page has an unexpected layout; update the markers in "
            "simulations/report.py"
        )

    scenario = html.escape(str(result.report["scenario"]))
    header = (
        f"{_STYLE}\n<h1>Simulation: {scenario}</h1>\n"
        f"<p>Seed {html.escape(str(result.report['seed']))}. The report lists "
        "the parameters, findings and checks.</p>\n"
        "<details><summary>Report</summary>\n"
        f"<pre>{html.escape(report_json(result))}</pre></details>\n"
        "<h2>Charts</h2>\n"
    )
    tables = ["<h2>Summary</h2>", _table_html(result.summary)]
    for name, table in result.tables.items():
        tables += [f"<h2>{html.escape(name)}</h2>", _table_html(table)]
    page = page.replace(_CHARTS_MARKER, header + _CHARTS_MARKER, 1)
    return page.replace(_END_MARKER, "\n".join(tables) + "\n" + _END_MARKER, 1)


def _table_html(table: pd.DataFrame) -> str:
    shown = table.head(MAX_ROWS_IN_PAGE)
    note = ""
    if len(table) > len(shown):
        note = f"<p>First {len(shown)} of {len(table)} rows; the CSV file has all.</p>"
    return shown.to_html(index=False, classes="frame", border=0) + note


def write_outputs(result: Result, directory: Path) -> list[Path]:
    """Write the CSV files, the JSON report and the HTML report; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in table_files(result).items():
        path = directory / name
        path.write_bytes(csv_bytes(table))
        written.append(path)

    stem = file_stem(result)
    json_path = directory / f"{stem}-report.json"
    json_path.write_text(report_json(result), encoding="utf-8")
    html_path = directory / f"{stem}-report.html"
    html_path.write_text(report_html(result), encoding="utf-8")
    return [*written, json_path, html_path]
