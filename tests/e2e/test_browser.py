"""The dashboard end to end: a real Streamlit server, headless Chromium and oathtool.

The tests in this module are steps of one story in one portal and run in file
order. Each step starts with ``story.require(...)``, which skips it when an
earlier step that it builds on did not pass, so a failure is reported once, at
its own step.

Each person has their own browser tab, because Streamlit keeps one session
per tab. Codes come from oathtool, which plays the authenticator app, and the
QR code is read from the page with zxing-cpp.
"""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from core.verification import LOCK_AFTER_FAILURES
from dashboard.screens.support_console import (
    CHECK_CALLED_BACK,
    CHECK_LAST_ADMIN,
    CHECK_REQUESTER,
)
from tests.e2e.harness import (
    APP,
    REPO,
    VIEWPORT,
    StreamlitServer,
    browser_skip_reason,
    dashboard_env,
    oathtool_code,
    oathtool_codes,
    run_twofa,
)
from tests.helpers import SEEN, contains_code

if browser_skip_reason() is not None:
    pytest.skip(browser_skip_reason(), allow_module_level=True)

from playwright.sync_api import Locator, Page, expect

# The first run of a page opens the database, which can take seconds.
expect.set_options(timeout=30_000)

PERIOD = 30  # seconds per TOTP time step, the core's default
PORTAL = "acme"
PORTAL_NAME = "Acme Billing"
ADMIN = "boss"  # the portal's only Master Admin
USER = "sam"  # an internal user with the Standard profile
CUSTOMER = "cory"  # a customer user, never asked for a code
PASSWORDS = {
    ADMIN: "Boss-e2e-pass-3391",
    USER: "Sam-e2e-pass-7046",
    CUSTOMER: "Cory-e2e-pass-2218",
}
OPERATOR = "Jo Ops"  # a support operator of the vendor, not a portal user
OPERATOR_PASSWORD = "Operator-e2e-pass-5182"
TICKET = "SUP-1042"
SEEN.passwords.update([*PASSWORDS.values(), OPERATOR_PASSWORD])


@dataclass
class Authenticator:
    """One entry in an authenticator app, played by oathtool.

    It remembers the last time step it produced a code for, because the
    server rejects a code of a step at or before the last accepted one.
    """

    secret: str
    last_step: int = -1
    replayable_code: str | None = None  # a code that the server has accepted

    def code_at(self, unix_time: int) -> str:
        """Return the code of the time step that contains ``unix_time``."""
        code = oathtool_code(self.secret, unix_time)
        self.last_step = max(self.last_step, unix_time // PERIOD)
        SEEN.codes.add(code)
        return code

    def next_code(self) -> str:
        """Return a code of the current step, or of the first step after the last one used.

        The server accepts one step on either side of its own, so a step more
        than one ahead is waited for.
        """
        step = max(int(time.time()) // PERIOD, self.last_step + 1)
        ahead = step - 1 - int(time.time()) // PERIOD
        if ahead > 0:
            time.sleep(ahead * PERIOD - time.time() % PERIOD + 0.1)
        return self.code_at(step * PERIOD)

    def wrong_code(self) -> str:
        """Return a well-formed code that matches no step within three of now."""
        first_step = int(time.time()) // PERIOD - 3
        valid = set(oathtool_codes(self.secret, first_step * PERIOD, 6))
        for digit in "0123456789":
            candidate = digit * 6
            if candidate not in valid:
                return candidate
        raise AssertionError("every repeated-digit code is valid, which cannot happen")


@dataclass
class Story:
    """What the steps pass on to each other: passed steps, tabs and authenticators."""

    server: StreamlitServer
    browser: object  # Playwright BrowserContext
    env: dict[str, str]
    screenshot_dir: Path
    passed: set[str] = field(default_factory=set)
    tabs: dict[str, Page] = field(default_factory=dict)
    authenticators: dict[str, Authenticator] = field(default_factory=dict)

    def require(self, *steps: str) -> None:
        missing = [step for step in steps if step not in self.passed]
        if missing:
            pytest.skip(
                f"needs the earlier step(s) {', '.join(missing)}, which did not pass"
            )

    def screenshot(self, page: Page, name: str, tables: int = 0) -> None:
        """Save the whole page as ``NAME.png``, with the pointer out of the way.

        ``tables`` is the number of tables (st.dataframe) on the page, which
        are drawn after the script run and are waited for. Streamlit scrolls
        inside its main region, so the window is made as tall as that
        region's content for the shot.
        """
        page.mouse.move(0, 0)
        wait_until_idle(page)
        expect(grids(page)).to_have_count(tables)
        height = page.get_by_role("main").evaluate("main => main.scrollHeight")
        page.set_viewport_size({**VIEWPORT, "height": max(VIEWPORT["height"], height)})
        try:
            page.screenshot(path=self.screenshot_dir / f"{name}.png")
        finally:
            page.set_viewport_size(VIEWPORT)


@pytest.fixture(scope="module")
def story(browser, screenshot_dir, tmp_path_factory):
    """Seed portal acme with the command line, start the dashboard on it, and stop it at the end."""
    data_dir = tmp_path_factory.mktemp("twofa-data")
    env = dashboard_env(data_dir)
    run_twofa(env, "portal", "add", PORTAL, "--name", PORTAL_NAME)
    run_twofa(
        env,
        *("user", "add", PORTAL, ADMIN, "--profile", "master-admin"),
        "--password-stdin",
        stdin=f"{PASSWORDS[ADMIN]}\n",
    )
    # Once the portal has a Master Admin, they sign in to add users: the new
    # user's password comes first on standard input, then the Master Admin's.
    for username, profile in ((USER, "standard"), (CUSTOMER, "customer")):
        run_twofa(
            env,
            *("user", "add", PORTAL, username, "--profile", profile),
            *("--password-stdin", "--as", ADMIN),
            stdin=f"{PASSWORDS[username]}\n{PASSWORDS[ADMIN]}\n",
        )

    server = StreamlitServer(APP, env, data_dir / "streamlit.log")
    server.start()
    try:
        yield Story(server, browser, env, screenshot_dir)
    finally:
        server.stop()
    assert_no_leak(server.log_text())


def assert_no_leak(text: str) -> None:
    """Fail when the server's output contains a secret, code or password that the tests used."""
    data = text.encode("utf-8", "replace")
    leaks = [needle for needle in SEEN.needles() if needle in data]
    assert not leaks, f"{len(leaks)} secret(s) or password(s) appear in the server log"
    codes = [code for code in SEEN.codes if contains_code(data, code)]
    assert not codes, f"{len(codes)} code(s) appear in the server log"


def tab(story: Story, person: str) -> Page:
    """Return the browser tab of ``person``, opening it at the sign-in page the first time."""
    if person not in story.tabs:
        page = story.browser.new_page()
        page.goto(story.server.url)
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        story.tabs[person] = page
    page = story.tabs[person]
    # Headless Chromium 150 delays animation frames in a background tab by about
    # 2 s, and Playwright waits for frames before each click.
    page.bring_to_front()
    return page


# Screen actions. Selectors use the labels, roles and texts that a person sees.


def wait_until_idle(page: Page) -> None:
    """Wait until the page's script run has finished.

    Streamlit marks its root element with ``data-test-script-state`` for
    tests. A click or a typed value that arrives while a run is still under
    way can be lost when that run draws the page again.
    """
    expect(page.locator("[data-test-script-state]")).to_have_attribute(
        "data-test-script-state", "notRunning"
    )


def press(page: Page, name: str) -> None:
    """Click the button ``name`` once the current script run has finished."""
    wait_until_idle(page)
    page.get_by_role("button", name=name, exact=True).click()


def navigation(page: Page) -> Locator:
    """Return the sidebar's list of the pages that the visitor may open."""
    return page.get_by_role("navigation", name="App pages")


def open_page(page: Page, title: str, heading: str | None = None) -> None:
    """Follow the sidebar link ``title`` and wait for the page's heading (the title by default)."""
    wait_until_idle(page)
    navigation(page).get_by_role("link", name=title, exact=True).click()
    expect(
        page.get_by_role("heading", name=heading or title, exact=True)
    ).to_be_visible()


def expect_chart(page: Page) -> None:
    """Wait until the page's one chart is drawn, because Vega-Lite draws it after the script run."""
    expect(page.get_by_role("main").get_by_role("img")).to_be_visible()


def grids(page: Page) -> Locator:
    """Return the tables (st.dataframe) on the page that are drawn.

    Streamlit draws a table on a canvas with Glide Data Grid, which keeps the
    rows in view in a hidden grid for screen readers. Columns out of view are
    missing from it.
    """
    return page.get_by_role("grid", include_hidden=True)


def table_cell(page: Page, column: str, row_key: str, table: int = 0) -> Locator:
    """Return the cell in ``column`` of the row whose first cell is ``row_key``."""
    grid = grids(page).nth(table)
    headers = grid.get_by_role("columnheader", include_hidden=True)
    expect(headers.first).to_be_attached()
    index = headers.all_text_contents().index(column)
    key_cell = page.get_by_role(
        "gridcell", name=row_key, exact=True, include_hidden=True
    )
    row = grid.get_by_role("row", include_hidden=True).filter(has=key_cell)
    return row.get_by_role("gridcell", include_hidden=True).nth(index)


def choose(page: Page, label: str, option: str | re.Pattern[str]) -> None:
    """Pick ``option`` (the whole text, or a pattern) in the select box ``label``.

    The box is scrolled into view before its list opens, because the list
    closes when the page scrolls under it.
    """
    wait_until_idle(page)
    box = page.get_by_role("combobox", name=label, exact=True)
    box.scroll_into_view_if_needed()
    box.click()
    page.get_by_role("option", name=option, exact=True).click()
    expect(box).to_have_value(option)


def tick(page: Page, label: str) -> None:
    """Tick the checkbox ``label``. Its input is hidden under the label, which takes the click."""
    wait_until_idle(page)
    box = page.get_by_role("checkbox", name=label, exact=True)
    page.locator("label", has=box).click()
    expect(box).to_be_checked()


def submit_password(
    page: Page, username: str, password: str, portal: str = PORTAL
) -> None:
    wait_until_idle(page)
    page.get_by_label("Portal", exact=True).fill(portal)
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    press(page, "Sign in")


def submit_code(page: Page, code: str) -> None:
    wait_until_idle(page)
    page.get_by_label("Authentication code", exact=True).fill(code)
    press(page, "Verify")


def expect_signed_in(page: Page, username: str, method: str) -> None:
    expect(page.get_by_role("heading", name="Signed in")).to_be_visible()
    expect(page.get_by_text(f"Username: {username}")).to_be_visible()
    expect(page.get_by_text(f"Signed in with: {method}")).to_be_visible()


def sign_out(page: Page) -> None:
    """Open the home page and press Sign out there."""
    open_page(page, "Home", heading="Signed in")
    press(page, "Sign out")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.get_by_text("You are signed out.")).to_be_visible()


def read_enrollment(page: Page, username: str) -> Authenticator:
    """Decode the QR code on the enrollment screen, check its key URI, and return the entry."""
    expect(
        page.get_by_role("heading", name="Set up two-factor authentication")
    ).to_be_visible()
    wait_until_idle(page)
    # The QR code is the one image that the app serves from its media endpoint.
    qr = page.locator("img[src*='/media/']")
    expect(qr).to_have_count(1)
    expect(qr).to_be_visible()

    picture = Image.open(io.BytesIO(qr.screenshot()))
    found = zxingcpp.read_barcodes(picture)
    assert len(found) == 1, f"expected one barcode in the QR image, found {len(found)}"
    assert found[0].format == zxingcpp.BarcodeFormat.QRCode
    uri = urllib.parse.urlsplit(found[0].text)
    query = dict(urllib.parse.parse_qsl(uri.query))

    assert uri.scheme == "otpauth"
    assert uri.netloc == "totp"
    assert urllib.parse.unquote(uri.path) == f"/{PORTAL_NAME}:{username}"
    assert query["issuer"] == PORTAL_NAME
    assert query.get("algorithm", "SHA1") == "SHA1"
    assert query.get("digits", "6") == "6"
    assert query.get("period", "30") == "30"
    secret = query["secret"]
    SEEN.add_secret(secret)
    assert len(secret) == 32, "a 160-bit secret is 32 base32 characters"

    # The same secret is on the screen as text, in groups of four characters.
    grouped = " ".join(secret[start : start + 4] for start in range(0, len(secret), 4))
    expect(page.get_by_text(grouped, exact=True)).to_be_visible()
    expect(page.get_by_text(f"Account: {username}")).to_be_visible()
    expect(page.get_by_text(f"Issuer: {PORTAL_NAME}")).to_be_visible()
    return Authenticator(secret)


# The story, step by step.


def test_sign_in_page_served(story):
    page = tab(story, ADMIN)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_label("Portal", exact=True)).to_be_visible()
    expect(page.get_by_label("Username", exact=True)).to_be_visible()
    expect(page.get_by_label("Password", exact=True)).to_be_visible()
    story.screenshot(page, "sign-in")
    story.passed.add("sign-in page")


def test_master_admin_turns_switch_on(story):
    story.require("sign-in page")
    page = tab(story, ADMIN)
    submit_password(page, ADMIN, PASSWORDS[ADMIN])
    expect_signed_in(page, ADMIN, "password only")

    open_page(page, "Internal settings")
    switch = page.get_by_role("switch", name="Two-factor authentication")
    expect(switch).not_to_be_checked()
    # The switch's input is hidden under its label, which takes the click.
    wait_until_idle(page)
    page.locator("label", has=switch).click()
    expect(page.get_by_text("Turn two-factor authentication on?")).to_be_visible()
    press(page, "Turn on")

    expect(page.get_by_text("Two-factor authentication is on.")).to_be_visible()
    expect(switch).to_be_checked()
    story.screenshot(page, "settings")
    story.passed.add("switch on")


def test_new_user_enrolls_with_qr(story):
    story.require("switch on")
    page = tab(story, USER)
    submit_password(page, USER, PASSWORDS[USER])
    authenticator = read_enrollment(page, USER)
    story.screenshot(page, "enrollment")

    submit_code(page, authenticator.next_code())
    expect_signed_in(page, USER, "password and authentication code")
    story.authenticators[USER] = authenticator
    # Only a Master Admin gets the operations pages.
    pages = navigation(page)
    expect(pages.get_by_role("link", name="Home")).to_be_visible()
    expect(pages.get_by_role("link", name="Internal settings")).to_have_count(0)
    expect(pages.get_by_role("link", name="Internal users")).to_have_count(0)
    sign_out(page)
    story.passed.add("user enrolled")


def test_customer_signs_in_without_code(story):
    story.require("switch on")
    page = tab(story, CUSTOMER)
    submit_password(page, CUSTOMER, PASSWORDS[CUSTOMER])
    expect_signed_in(page, CUSTOMER, "password only")
    sign_out(page)


def test_user_signs_in_with_later_code(story):
    story.require("user enrolled")
    page = tab(story, USER)
    authenticator = story.authenticators[USER]

    submit_password(page, USER, PASSWORDS[USER])
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    story.screenshot(page, "code-entry")
    code = authenticator.code_at(int(time.time()) + PERIOD)
    submit_code(page, code)
    expect_signed_in(page, USER, "password and authentication code")
    sign_out(page)
    story.authenticators[USER].replayable_code = code
    story.passed.add("user signed in again")


def test_replayed_code_rejected(story):
    story.require("user signed in again")
    page = tab(story, USER)

    submit_password(page, USER, PASSWORDS[USER])
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    submit_code(page, story.authenticators[USER].replayable_code)
    expect(page.get_by_text("That code was already used.")).to_be_visible()
    press(page, "Sign in as someone else")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_master_admin_resets_user(story):
    story.require("user signed in again")
    page = tab(story, ADMIN)
    # The Master Admin enrolls too, at the first sign-in after the switch.
    sign_out(page)
    submit_password(page, ADMIN, PASSWORDS[ADMIN])
    admin_authenticator = read_enrollment(page, ADMIN)
    submit_code(page, admin_authenticator.next_code())
    expect_signed_in(page, ADMIN, "password and authentication code")
    story.authenticators[ADMIN] = admin_authenticator

    open_page(page, "Internal users")
    expect(page.get_by_role("button", name="Reset", exact=True)).to_be_visible()
    expect(table_cell(page, "State", ADMIN)).to_have_text("active")
    expect(table_cell(page, "State", USER)).to_have_text("active")
    expect(table_cell(page, "State", CUSTOMER)).to_have_text("not affected")
    story.screenshot(page, "users", tables=1)
    choose(page, "User to reset", USER)
    page.get_by_label("Reason", exact=True).fill("lost phone")
    press(page, "Reset")
    expect(page.get_by_text(f"Reset the enrollment of {USER}?")).to_be_visible()
    press(page, "Confirm reset")
    expect(page.get_by_text(f"The enrollment of {USER} was reset")).to_be_visible()
    expect(table_cell(page, "State", USER)).to_have_text("not enrolled")
    expect(table_cell(page, "State", ADMIN)).to_have_text("active")
    story.passed.add("user reset")


def test_reset_user_enrolls_again(story):
    story.require("user reset")
    page = tab(story, USER)
    old_authenticator = story.authenticators[USER]

    submit_password(page, USER, PASSWORDS[USER])
    new_authenticator = read_enrollment(page, USER)
    assert new_authenticator.secret != old_authenticator.secret
    submit_code(page, new_authenticator.next_code())
    expect_signed_in(page, USER, "password and authentication code")
    sign_out(page)

    # The old authenticator entry no longer works, the new one does.
    submit_password(page, USER, PASSWORDS[USER])
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    submit_code(page, old_authenticator.next_code())
    expect(page.get_by_text("That code is not correct.")).to_be_visible()
    submit_code(page, new_authenticator.next_code())
    expect_signed_in(page, USER, "password and authentication code")
    sign_out(page)
    story.authenticators[USER] = new_authenticator
    story.passed.add("user enrolled again")


def test_enrollment_overview_counts(story):
    story.require("user enrolled again")
    page = tab(story, ADMIN)
    open_page(page, "Enrollment overview")
    # boss and sam are the portal's internal users, and both are enrolled again.
    expect(page.get_by_role("main")).to_match_aria_snapshot(
        """
        - paragraph: Enrolled
        - paragraph: "2"
        - paragraph: Pending
        - paragraph: "0"
        - paragraph: Not started
        - paragraph: "0"
        """
    )
    expect_chart(page)
    story.screenshot(page, "enrollment-overview")


def test_audit_page_lists_story(story):
    story.require("user enrolled again")
    page = tab(story, ADMIN)
    open_page(page, "Audit log")
    expect(page.get_by_role("button", name="Download CSV")).to_be_visible()
    expect_chart(page)
    story.screenshot(page, "audit", tables=1)

    rows = download_audit_csv(page)
    shown = page.get_by_text("event(s), newest first.")
    expect(shown).to_contain_text(f"{len(rows)} event(s)")
    events = [(row["Event"], row["Actor"], row["Target"]) for row in rows]
    expected = [
        ("setting_changed", ADMIN, ""),
        ("enrollment_started", USER, USER),
        ("enrollment_confirmed", USER, USER),
        ("code_accepted", USER, USER),
        ("replay_rejected", USER, USER),
        ("enrollment_started", ADMIN, ADMIN),
        ("enrollment_confirmed", ADMIN, ADMIN),
        ("enrollment_reset", ADMIN, USER),
        ("code_rejected", USER, USER),
        ("signed_out", USER, USER),
    ]
    for event in expected:
        assert event in events, f"audit log has no {event} row"
    reset = next(row for row in rows if row["Event"] == "enrollment_reset")
    assert reset["Reason"] == "lost phone"
    assert_no_leak("\n".join(str(row) for row in rows))
    story.passed.add("audit page")


def download_audit_csv(page: Page) -> list[dict[str, str]]:
    """Press Download CSV on the audit page and return the rows of the file."""
    with page.expect_download() as download_info:
        press(page, "Download CSV")
    text = Path(download_info.value.path()).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def test_last_master_admin_locked_out(story):
    story.require("audit page")
    page = tab(story, ADMIN)
    authenticator = story.authenticators[ADMIN]
    sign_out(page)

    submit_password(page, ADMIN, PASSWORDS[ADMIN])
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    for failures in range(1, LOCK_AFTER_FAILURES):
        submit_code(page, authenticator.wrong_code())
        expect(page.get_by_text(f"({failures} wrong in a row;")).to_be_visible()
    submit_code(page, authenticator.wrong_code())
    expect(page.get_by_text("Too many wrong codes.")).to_be_visible()

    # While code entry is locked, the password step shows the lock as well.
    press(page, "Sign in as someone else")
    submit_password(page, ADMIN, PASSWORDS[ADMIN])
    expect(page.get_by_text("Too many wrong codes.")).to_be_visible()
    story.passed.add("admin locked out")


def test_support_operator_resets_last_admin(story):
    story.require("admin locked out")
    operator_authenticator = add_operator(story.env, OPERATOR, OPERATOR_PASSWORD)
    page = tab(story, OPERATOR)

    open_page(page, "Support sign-in")
    story.screenshot(page, "support-sign-in")
    page.get_by_label("Operator", exact=True).fill(OPERATOR)
    page.get_by_label("Password", exact=True).fill(OPERATOR_PASSWORD)
    page.get_by_label("Authentication code", exact=True).fill(
        operator_authenticator.next_code()
    )
    press(page, "Sign in")
    expect(page.get_by_role("heading", name="Support console")).to_be_visible()

    # The search has a visible result only when it changes, so a search that
    # finds nothing comes first and the wait for the portal follows it.
    search = page.get_by_label("Portal", exact=True)
    no_match = page.get_by_text("No portal's slug or name contains that text.")
    wait_until_idle(page)
    search.fill("no-such-portal")
    search.press("Enter")
    expect(no_match).to_be_visible()
    wait_until_idle(page)
    search.fill(PORTAL)
    search.press("Enter")
    expect(no_match).to_have_count(0)
    expect(
        page.get_by_role("heading", name=f"{PORTAL_NAME} ({PORTAL})")
    ).to_be_visible()
    choose(page, "User to reset", re.compile(rf"^{ADMIN} \(Master Admin, "))
    expect(
        page.get_by_text(f"{ADMIN} is this portal's last Master Admin.")
    ).to_be_visible()

    # Without the second confirmation the core rejects the reset.
    tick(page, CHECK_REQUESTER)
    tick(page, CHECK_CALLED_BACK)
    page.get_by_label("Ticket", exact=True).fill(TICKET)
    press(page, "Reset")
    expect(page.get_by_text("give the second confirmation")).to_be_visible()

    tick(page, CHECK_LAST_ADMIN)
    press(page, "Reset")
    expect(page.get_by_text(f"The enrollment of {ADMIN} was reset")).to_be_visible()
    expect(
        page.get_by_text("They were the portal's last Master Admin.")
    ).to_be_visible()
    expect(page.get_by_text("Audit entry of this reset:")).to_be_visible()
    story.screenshot(page, "support-console", tables=2)
    story.passed.add("support reset")


def test_admin_enrolls_after_support_reset(story):
    story.require("support reset")
    page = tab(story, ADMIN)
    old_authenticator = story.authenticators[ADMIN]

    page.reload()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    submit_password(page, ADMIN, PASSWORDS[ADMIN])
    new_authenticator = read_enrollment(page, ADMIN)
    assert new_authenticator.secret != old_authenticator.secret
    submit_code(page, new_authenticator.next_code())
    expect_signed_in(page, ADMIN, "password and authentication code")
    story.authenticators[ADMIN] = new_authenticator

    open_page(page, "Audit log")
    rows = download_audit_csv(page)
    locks = [row for row in rows if row["Event"] == "code_locked"]
    assert [row["Target"] for row in locks] == [ADMIN]
    support_resets = [row for row in rows if row["Event"] == "support_reset"]
    assert len(support_resets) == 1
    assert support_resets[0]["Actor kind"] == "operator"
    assert support_resets[0]["Actor"] == OPERATOR
    assert support_resets[0]["Target"] == ADMIN
    assert TICKET in support_resets[0]["Reason"]
    assert_no_leak("\n".join(str(row) for row in rows))


def test_flow_explorer_sandbox(story):
    story.require("sign-in page")
    page = tab(story, "visitor")
    open_page(page, "Flow explorer")

    choose(page, "Sandbox user", "owner (Master Admin)")
    press(page, "Submit password")
    expect(
        page.get_by_text("owner is signed in with the password only.")
    ).to_be_visible()
    press(page, "Turn two-factor authentication on")
    expect(page.get_by_text("Two-factor authentication is on.")).to_be_visible()

    choose(page, "Sandbox user", "alex (Standard)")
    press(page, "Submit password")
    expect(page.get_by_text("Password accepted for alex.")).to_be_visible()
    press(page, "Use the phone's code")
    expect(page.get_by_text("alex is signed in with password and code")).to_be_visible()
    press(page, "Try a replay")
    expect(page.get_by_text("That code was already used.")).to_be_visible()
    story.screenshot(page, "flow-explorer", tables=2)


def add_operator(env: dict[str, str], name: str, password: str) -> Authenticator:
    """Add a support operator with ``twofa operator add`` and confirm it with oathtool.

    The command reads the password, prints the key URI, then reads the first
    code, so the code is written only after the URI has been read.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "operator", "add", name],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        process.stdin.write(f"{password}\n")
        process.stdin.flush()
        output = []
        for line in process.stdout:
            output.append(line)
            if line.startswith("Key URI:"):
                break
        else:
            raise AssertionError(
                f"operator add printed no Key URI line:\n{''.join(output)}"
            )

        uri = urllib.parse.urlsplit(line.removeprefix("Key URI:").strip())
        secret = dict(urllib.parse.parse_qsl(uri.query))["secret"]
        SEEN.add_secret(secret)
        authenticator = Authenticator(secret)
        remaining, _ = process.communicate(f"{authenticator.next_code()}\n", timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output.append(remaining)
    assert process.returncode == 0, f"operator add failed:\n{''.join(output)}"
    assert f"Operator {name!r} confirmed" in remaining
    return authenticator
