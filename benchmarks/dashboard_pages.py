"""Measure the dashboard's pages against a bare one-widget Streamlit page.

Two measurements, each beside the same bare page (``st.button("Sign in")``
and nothing else) measured in the same run:

- rerun time: each page of dashboard/app.py runs in Streamlit's AppTest, signed
  in as the role that may open it, and every timed ``AppTest.run()`` reruns
  it. Pages and the bare page take turns in rounds, so a slow spell of the
  machine falls on all of them alike. Target: no page's median more than 3
  times the bare page's median.
- first render in Chromium: ``streamlit run`` serves the dashboard and the bare
  page on 127.0.0.1, and headless Chromium (/usr/bin/chromium) opens each in
  a new browser context with an empty cache. The time is the page's
  ``performance.now()`` (milliseconds since navigation start) when a visible
  ``Sign in`` button first appears in the DOM.

The data is one portal with a Master Admin, 24 other internal users in every
enrollment state, 5 customers and their audit events, plus one support
operator. The script prints a Markdown table, writes the results and the
machine description to artifacts/dashboard_pages.json, and exits with status 1
when a page misses the rerun target, or 2 when a setup step fails. Run it with
``--help`` for the options.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import pyotp

REPO = Path(__file__).resolve().parents[1]
# The browser helpers live with the browser tests, which are not an installed package.
sys.path.insert(0, str(REPO))

from core import admin, operators, signin  # noqa: E402
from core.context import Context, open_context  # noqa: E402
from core.signin import Status  # noqa: E402
from dashboard import state  # noqa: E402
from tests.e2e.harness import (  # noqa: E402
    APP,
    CHROMIUM,
    CHROMIUM_ARGS,
    VIEWPORT,
    StreamlitServer,
    browser_skip_reason,
    dashboard_env,
)

MAX_RERUN_RATIO = 3.0
DEFAULT_OUTPUT = Path("artifacts/dashboard_pages.json")

PORTAL = "bench"
PORTAL_NAME = "Benchmark Billing"
ADMIN = "boss"
PASSWORD = "Benchmark-pass-4410"
OPERATOR = "Bench Ops"
INTERNAL_USERS = 24  # besides the Master Admin
ENROLLED_USERS = 16  # of INTERNAL_USERS. The next 4 stay pending, the rest not started.
PENDING_USERS = 4
CUSTOMERS = 5

BARE_PAGE = 'import streamlit as st\n\nst.button("Sign in")\n'

# Records performance.now() when a visible button with the text "Sign in" is
# first in the DOM. It is installed before any script of the page runs.
WATCH_SIGN_IN = """
(() => {
  const visibleSignIn = () => [...document.querySelectorAll("button")].some((button) => {
    const box = button.getBoundingClientRect();
    return button.textContent.trim() === "Sign in" && box.width > 0 && box.height > 0
      && getComputedStyle(button).visibility !== "hidden";
  });
  const observer = new MutationObserver(() => {
    if (window.signInVisibleAt === undefined && visibleSignIn()) {
      window.signInVisibleAt = performance.now();
      observer.disconnect();
    }
  });
  observer.observe(document, { childList: true, subtree: true, attributes: true });
})();
"""


@dataclass(frozen=True)
class PageCase:
    """One page of the app, who opens it, and the title its first run must show."""

    name: str
    script: str | None  # relative to dashboard/, None for the role's default page
    role: str | None  # "admin", "operator" or None for a signed-out visitor
    title: str


PAGES = (
    PageCase("Sign in", None, None, "Sign in"),
    PageCase("Home", None, "admin", "Signed in"),
    PageCase(
        "Internal settings",
        "screens/internal_settings.py",
        "admin",
        "Internal settings",
    ),
    PageCase("Internal users", "screens/internal_users.py", "admin", "Internal users"),
    PageCase(
        "Enrollment overview",
        "screens/enrollment_overview.py",
        "admin",
        "Enrollment overview",
    ),
    PageCase("Audit log", "screens/audit_log.py", "admin", "Audit log"),
    PageCase("Support sign-in", "screens/support_sign_in.py", None, "Support sign-in"),
    PageCase("Support console", None, "operator", "Support console"),
    PageCase("Flow explorer", "screens/flow_explorer.py", None, "Flow explorer"),
    # Before its first Run, so the time covers the scenario form, not a simulation.
    PageCase("Simulations", "screens/simulations.py", None, "Simulations"),
)
BARE_NAME = "bare page (one st.button)"


class BenchmarkFailure(RuntimeError):
    """A setup step did not do what the benchmark requires."""


@dataclass(frozen=True)
class Sessions:
    admin: str
    operator: str


@dataclass(frozen=True)
class Timing:
    name: str
    samples: int
    median_ms: float
    p90_ms: float
    ratio_to_bare: float


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except BenchmarkFailure as error:
        print(f"dashboard_pages: {error}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    """Seed a temporary database, measure, print the tables and write the JSON report."""
    logging.basicConfig(level=logging.WARNING)
    # AppTest's calls outside a script run log that there is no script run
    # context, which is expected here. Streamlit resets its loggers' levels, so
    # a filter drops these lines.
    logging.getLogger(
        "streamlit.runtime.scriptrunner_utils.script_run_context"
    ).addFilter(lambda record: "missing ScriptRunContext" not in record.getMessage())
    skip_reason = (
        "--skip-browser was given" if args.skip_browser else browser_skip_reason()
    )

    with tempfile.TemporaryDirectory(prefix="dashboard-pages-") as name:
        folder = Path(name)
        env = dashboard_env(folder)
        # AppTest runs the app in this process, so it reads the same variables.
        os.environ.pop("TWOFA_DATABASE_URL", None)
        os.environ.update(env)
        bare_script = folder / "bare_page.py"
        bare_script.write_text(BARE_PAGE, encoding="utf-8")

        ctx = open_context(f"sqlite:///{folder / 'twofa.sqlite3'}")
        try:
            sessions = seed(ctx)
        finally:
            ctx.close()

        reruns = measure_reruns(sessions, bare_script, args.warmup, args.reruns)
        renders = []
        if skip_reason is None:
            renders = measure_first_render(
                env, folder, bare_script, args.warmup, args.renders
            )

    missed = [
        timing.name for timing in reruns if timing.ratio_to_bare > MAX_RERUN_RATIO
    ]
    print_report(reruns, renders, skip_reason, missed)

    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": describe_machine(),
        "options": {key: str(value) for key, value in vars(args).items()},
        "reruns": [asdict(timing) for timing in reruns],
        "first_render": [asdict(timing) for timing in renders],
        "first_render_skipped": skip_reason,
        "max_rerun_ratio": MAX_RERUN_RATIO,
        "missed": missed,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 1 if missed else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--reruns",
        type=int,
        default=40,
        help="timed AppTest reruns per page (default 40)",
    )
    parser.add_argument(
        "--renders",
        type=int,
        default=15,
        help="timed first renders in Chromium per server (default 15)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=3,
        help="untimed reruns and renders per page before timing (default 3)",
    )
    parser.add_argument(
        "--skip-browser", action="store_true", help="measure only the AppTest reruns"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"JSON file for the results (default {DEFAULT_OUTPUT})",
    )
    args = parser.parse_args(argv)
    for option in ("reruns", "renders"):
        if getattr(args, option) < 1:
            parser.error(f"--{option} must be at least 1, got {getattr(args, option)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be 0 or more, got {args.warmup}")
    return args


# Data


def seed(ctx: Context) -> Sessions:
    """Create the benchmark portal and operator, and return the sessions that open the pages."""
    admin.create_portal(ctx, PORTAL, PORTAL_NAME)
    admin.add_user(ctx, PORTAL, ADMIN, PASSWORD, "master-admin")
    first = signin.submit_password(ctx, PORTAL, ADMIN, PASSWORD)
    expect_status(first, Status.SIGNED_IN, ADMIN)
    for number in range(1, INTERNAL_USERS + 1):
        admin.add_user(
            ctx, PORTAL, user_name(number), PASSWORD, "standard", first.session
        )
    for number in range(1, CUSTOMERS + 1):
        admin.add_user(
            ctx, PORTAL, f"customer{number:02d}", PASSWORD, "customer", first.session
        )
    admin.set_two_factor(ctx, first.session, PORTAL, True)
    signin.sign_out(ctx, first.session)

    admin_session = enroll(ctx, ADMIN)
    for number in range(1, ENROLLED_USERS + 1):
        signin.sign_out(ctx, enroll(ctx, user_name(number)))
    for number in range(ENROLLED_USERS + 1, ENROLLED_USERS + PENDING_USERS + 1):
        result = signin.submit_password(ctx, PORTAL, user_name(number), PASSWORD)
        expect_status(result, Status.ENROLLMENT_REQUIRED, user_name(number))
        signin.enrollment_offer(ctx, result.challenge)
    return Sessions(admin_session, operator_session(ctx))


def user_name(number: int) -> str:
    return f"user{number:02d}"


def enroll(ctx: Context, username: str) -> str:
    """Enroll ``username`` with a code of the current time step and return the session."""
    result = signin.submit_password(ctx, PORTAL, username, PASSWORD)
    expect_status(result, Status.ENROLLMENT_REQUIRED, username)
    offer = signin.enrollment_offer(ctx, result.challenge)
    code = pyotp.parse_uri(offer.uri).at(ctx.now())
    confirmed = signin.submit_code(ctx, result.challenge, code)
    expect_status(confirmed, Status.SIGNED_IN, username)
    return confirmed.session


def operator_session(ctx: Context) -> str:
    """Add and confirm the support operator, then sign in with the next step's code."""
    offer = operators.add_operator(ctx, OPERATOR, PASSWORD)
    authenticator = pyotp.parse_uri(offer.uri)
    confirmed = operators.confirm_operator(ctx, OPERATOR, authenticator.at(ctx.now()))
    if confirmed.status != operators.OperatorStatus.SIGNED_IN:
        raise BenchmarkFailure(f"operator confirmation failed: {confirmed.message}")
    # A code of the confirmed step would be a replay; the next step is within the window.
    result = operators.sign_in_operator(
        ctx, OPERATOR, PASSWORD, authenticator.at(ctx.now() + authenticator.interval)
    )
    if result.session is None:
        raise BenchmarkFailure(f"operator sign-in failed: {result.message}")
    return result.session


def expect_status(result: signin.SignInResult, expected: Status, username: str) -> None:
    if result.status != expected:
        raise BenchmarkFailure(
            f"sign-in of {username!r} returned {result.status}, expected {expected}: "
            f"{result.message}"
        )


# Reruns in AppTest


def measure_reruns(
    sessions: Sessions, bare_script: Path, warmup: int, reruns: int
) -> list[Timing]:
    from streamlit.testing.v1 import AppTest

    apps = {BARE_NAME: AppTest.from_file(str(bare_script), default_timeout=60)}
    apps[BARE_NAME].run()
    for case in PAGES:
        apps[case.name] = open_case(AppTest, case, sessions)

    samples: dict[str, list[float]] = {name: [] for name in apps}
    for round_number in range(warmup + reruns):
        for name, app in apps.items():
            started = time.perf_counter()
            app.run()
            elapsed_ms = (time.perf_counter() - started) * 1000
            if app.exception:
                raise BenchmarkFailure(f"{name} raised in AppTest: {app.exception}")
            if round_number >= warmup:
                samples[name].append(elapsed_ms)

    for case in PAGES:
        check_title(apps[case.name], case)
    return with_ratios(samples)


def open_case(app_test, case: PageCase, sessions: Sessions):
    """Return an AppTest that shows ``case``'s page, signed in as its role."""
    app = app_test.from_file(str(APP), default_timeout=60)
    if case.role == "admin":
        app.session_state[state.SESSION] = sessions.admin
    elif case.role == "operator":
        app.session_state[state.OPERATOR_SESSION] = sessions.operator
    app.run()
    if case.script is not None:
        app.switch_page(case.script).run()
    if app.exception:
        raise BenchmarkFailure(f"{case.name} raised in AppTest: {app.exception}")
    check_title(app, case)
    return app


def check_title(app, case: PageCase) -> None:
    titles = [element.value for element in app.title]
    if case.title not in titles:
        raise BenchmarkFailure(
            f"{case.name}: expected the title {case.title!r}, the page shows {titles}"
        )


def with_ratios(samples: dict[str, list[float]]) -> list[Timing]:
    bare_median = statistics.median(samples[BARE_NAME])
    timings = []
    for name, values in samples.items():
        median = statistics.median(values)
        timings.append(
            Timing(
                name=name,
                samples=len(values),
                median_ms=median,
                p90_ms=percentile(values, 0.9),
                ratio_to_bare=median / bare_median,
            )
        )
    return timings


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# First render in Chromium


def measure_first_render(
    env: dict[str, str], folder: Path, bare_script: Path, warmup: int, renders: int
) -> list[Timing]:
    from playwright.sync_api import sync_playwright

    servers = {
        BARE_NAME: StreamlitServer(bare_script, env, folder / "bare.log"),
        "Sign in": StreamlitServer(APP, env, folder / "dashboard.log"),
    }
    samples: dict[str, list[float]] = {name: [] for name in servers}
    try:
        for server in servers.values():
            server.start()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS)
            )
            try:
                for round_number in range(warmup + renders):
                    for name, server in servers.items():
                        elapsed_ms = first_render_ms(browser, server.url)
                        if round_number >= warmup:
                            samples[name].append(elapsed_ms)
            finally:
                browser.close()
    finally:
        for server in servers.values():
            server.stop()

    return with_ratios(samples)


def first_render_ms(browser, url: str) -> float:
    """Open ``url`` in a new context (empty cache) and return ms to a visible Sign in button."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.add_init_script(WATCH_SIGN_IN)
        page.goto(url, wait_until="commit")
        page.wait_for_function("window.signInVisibleAt !== undefined", timeout=60_000)
        return page.evaluate("window.signInVisibleAt")
    finally:
        context.close()


# Report


def print_report(
    reruns: list[Timing],
    renders: list[Timing],
    skip_reason: str | None,
    missed: list[str],
) -> None:
    print(format_table("Rerun in AppTest", reruns))
    print()
    if renders:
        heading = "First render in Chromium (navigation start to Sign in visible)"
        print(format_table(heading, renders))
    else:
        print(f"First render in Chromium skipped: {skip_reason}")
    print()
    target = f"Rerun target (at most {MAX_RERUN_RATIO:g} times the bare page)"
    if missed:
        print(f"{target} missed by: {', '.join(missed)}")
    else:
        print(f"{target} met by every page.")


def format_table(heading: str, timings: list[Timing]) -> str:
    lines = [
        f"{heading}:",
        "",
        "| page | samples | median ms | p90 ms | median / bare |",
        "|---|---:|---:|---:|---:|",
    ]
    for timing in timings:
        lines.append(
            f"| {timing.name} | {timing.samples} | {timing.median_ms:.1f} "
            f"| {timing.p90_ms:.1f} | {timing.ratio_to_bare:.2f} |"
        )
    return "\n".join(lines)


def describe_machine() -> dict[str, object]:
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    packages = ("streamlit", "playwright", "pandas", "altair", "sqlalchemy")
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": {name: metadata.version(name) for name in packages},
        "chromium": str(CHROMIUM) if CHROMIUM.exists() else None,
    }


if __name__ == "__main__":
    sys.exit(main())
