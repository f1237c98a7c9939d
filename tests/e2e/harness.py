"""Start a Streamlit app on 127.0.0.1 and drive it from headless Chromium.

The browser tests and benchmarks/dashboard_pages.py share these helpers. The
browser is Debian's Chromium at /usr/bin/chromium, driven by Playwright's
Python package, so no browser is downloaded.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "dashboard" / "app.py"

CHROMIUM = Path("/usr/bin/chromium")
# Headless Chromium as a clean, offline client: no sandbox (the tests may run as
# root), no GPU, and no background calls to Google services.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
VIEWPORT = {"width": 1280, "height": 900}

HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0


def browser_skip_reason() -> str | None:
    """Return why the browser tests cannot run here, or None when they can."""
    if not CHROMIUM.exists():
        return (
            f"{CHROMIUM} is missing: install Debian's chromium package "
            "(`apt-get install chromium`, as .ci/run does) to run the browser tests"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return (
            "the playwright package is missing: install the test extra "
            '(`pip install -e ".[test]"`); no browser download is needed'
        )
    return None


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def dashboard_env(data_dir: Path) -> dict[str, str]:
    """Return this process's environment, pointed at the SQLite file in ``data_dir``.

    TWOFA_DATABASE_URL and TWOFA_SECRET_KEY are dropped, so the database and its
    key file both come from ``data_dir``.
    """
    env = dict(os.environ)
    env.pop("TWOFA_DATABASE_URL", None)
    env.pop("TWOFA_SECRET_KEY", None)
    env["TWOFA_DATA_DIR"] = str(data_dir)
    return env


def run_twofa(
    env: Mapping[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m core.cli ARGS`` and raise AssertionError unless it exits with 0."""
    command = [sys.executable, "-m", "core.cli", *args]
    done = subprocess.run(
        command,
        input=stdin,
        env=dict(env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise AssertionError(
            f"twofa {' '.join(args)} exited with {done.returncode}: {done.stderr.strip()}"
        )
    return done


def oathtool_code(secret: str, at: int) -> str:
    """Compute the TOTP code of ``secret`` (base32) at Unix time ``at`` with oathtool."""
    done = subprocess.run(
        ["oathtool", "--totp", "-b", secret, "-N", f"@{at}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()


def oathtool_codes(secret: str, at: int, steps_after: int) -> list[str]:
    """Compute the codes of the time step at ``at`` and of the ``steps_after`` steps after it."""
    done = subprocess.run(
        ["oathtool", "--totp", "-b", secret, "-N", f"@{at}", "-w", str(steps_after)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.split()


class StreamlitServer:
    """One ``streamlit run`` subprocess on 127.0.0.1 and a free port.

    The server's output goes to ``log_path``, so a test can read it after a
    failure or scan it for leaked secrets.
    """

    def __init__(self, script: Path, env: Mapping[str, str], log_path: Path) -> None:
        self.script = script
        self.env = dict(env)
        self.log_path = log_path
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        """Start the server and wait until its health endpoint returns ``ok``."""
        command = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(self.script),
            "--server.address",
            HOST,
            "--server.port",
            str(self.port),
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
            # Edits to the app's files during a run must not change the pages under test.
            "--server.fileWatcherType",
            "none",
            # Hides the Deploy button, which would only clutter the screenshots.
            "--client.toolbarMode",
            "minimal",
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self._wait_until_healthy()

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        health = f"{self.url}/_stcore/health"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"streamlit exited with {self.process.returncode} before serving; "
                    f"its output:\n{self.log_text()[-4000:]}"
                )
            try:
                with urllib.request.urlopen(health, timeout=2) as response:
                    if response.status == 200 and response.read().strip() == b"ok":
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"streamlit did not serve {health} within {START_TIMEOUT_SECONDS:.0f} s; "
            f"its output:\n{self.log_text()[-4000:]}"
        )

    def stop(self) -> None:
        """Send SIGTERM to the server's pid, then SIGKILL if it has not exited in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def __enter__(self) -> StreamlitServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextmanager
def chromium_context(playwright, user_data_dir: Path) -> Iterator:
    """Launch headless Chromium with a fresh profile in ``user_data_dir`` and yield its context."""
    context = playwright.chromium.launch_persistent_context(
        str(user_data_dir),
        executable_path=str(CHROMIUM),
        headless=True,
        args=list(CHROMIUM_ARGS),
        viewport=VIEWPORT,
    )
    try:
        yield context
    finally:
        context.close()
