"""The dashboard's sign-in screens, driven through Streamlit's AppTest.

Each test runs dashboard/app.py against its own SQLite file with the demo portal
(two-factor authentication on). Codes come from pyotp at real time, as the
dashboard uses the system clock.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pyotp
import pytest
import streamlit as st
from streamlit.proto.TextInput_pb2 import TextInput as TextInputProto
from streamlit.testing.v1 import AppTest

from core import demo
from core.context import open_context
from core.verification import LOCK_AFTER_FAILURES
from dashboard import state

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
ACCOUNTS = {account.username: account for account in demo.DEMO_ACCOUNTS}


@pytest.fixture
def empty_database(tmp_path, monkeypatch):
    """Point the dashboard at a fresh SQLite file, with a context cache cleared on both sides."""
    url = f"sqlite:///{tmp_path / 'twofa.sqlite3'}"
    monkeypatch.setenv("TWOFA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TWOFA_DATABASE_URL", url)

    st.cache_resource.clear()
    yield url
    st.cache_resource.clear()


@pytest.fixture
def database(empty_database):
    """Seed the demo portal in the fresh SQLite file."""
    ctx = open_context(empty_database, fast_hashing=True)
    demo.seed_demo(ctx)
    ctx.engine.dispose()
    return empty_database


def start_app() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.run()
    assert not at.exception
    return at


@pytest.fixture
def app(database):
    return start_app()


def widget(elements, label):
    """Return the one element of ``elements`` with ``label``."""
    found = [element for element in elements if element.label == label]
    assert len(found) == 1, f"expected one widget {label!r}, found {len(found)}"
    return found[0]


def texts(elements) -> list[str]:
    return [element.value for element in elements]


def sign_in(at: AppTest, username: str, password: str | None = None) -> None:
    if password is None:
        password = ACCOUNTS[username].password
    widget(at.text_input, "Portal").input(demo.DEMO_PORTAL)
    widget(at.text_input, "Username").input(username)
    widget(at.text_input, "Password").input(password)
    widget(at.button, "Sign in").click()
    at.run()
    assert not at.exception


def enter_code(at: AppTest, code: str) -> None:
    widget(at.text_input, "Authentication code").input(code)
    widget(at.button, "Verify").click()
    at.run()
    assert not at.exception


def shown_secret(at: AppTest) -> str:
    assert len(at.code) == 1, "the enrollment screen shows the key once"
    return at.code[0].value.replace(" ", "")


def enroll(at: AppTest, username: str) -> pyotp.TOTP:
    """Sign in, confirm the enrollment with the current code, and return the app's TOTP."""
    sign_in(at, username)
    authenticator = pyotp.TOTP(shown_secret(at))
    enter_code(at, authenticator.now())
    return authenticator


def next_step_code(authenticator: pyotp.TOTP) -> str:
    """Return the code of the next time step, which the one-step window accepts."""
    return authenticator.at(time.time() + authenticator.interval)


def assert_sign_in_form(at: AppTest) -> None:
    password = widget(at.text_input, "Password")
    assert password.proto.type == TextInputProto.Type.PASSWORD
    assert widget(at.text_input, "Portal")
    assert widget(at.text_input, "Username")
    assert widget(at.button, "Sign in")


def landing_text(at: AppTest) -> str:
    assert texts(at.title) == ["Signed in"]
    return "\n".join(texts(at.markdown))


def test_sign_in_form_shows_labelled_inputs(app):
    assert texts(app.title) == ["Sign in"]
    assert_sign_in_form(app)
    assert not app.error


def test_empty_database_points_to_demo_seed(empty_database):
    at = start_app()

    assert len(at.info) == 1
    assert "twofa demo-seed" in at.info[0].value
    assert not at.text_input, "no form without a portal"


def test_internal_user_enrolls_then_signs_out(app, caplog):
    caplog.set_level(logging.DEBUG)
    sign_in(app, "alex")

    assert texts(app.title) == ["Set up two-factor authentication"]
    assert len(app.image) == 1, "the QR code is shown"
    groups = app.code[0].value.split(" ")
    assert all(len(group) == 4 for group in groups[:-1])
    assert "alex" in "\n".join(texts(app.markdown))
    assert demo.DEMO_PORTAL_NAME in "\n".join(texts(app.markdown))
    assert any("friendly name" in caption for caption in texts(app.caption))
    assert any("QR code expires" in caption for caption in texts(app.caption))

    secret = shown_secret(app)
    app.run()
    assert shown_secret(app) == secret, "a rerun shows the same pending secret"

    code = pyotp.TOTP(secret).now()
    enter_code(app, code)

    text = landing_text(app)
    assert "alex" in text
    assert demo.DEMO_PORTAL_NAME in text
    assert "Standard" in text
    assert "password and authentication code" in text

    widget(app.button, "Sign out").click()
    app.run()
    assert not app.exception
    assert texts(app.title) == ["Sign in"]
    assert_sign_in_form(app)
    assert texts(app.info) == ["You are signed out."]

    assert secret not in caplog.text
    assert code not in caplog.text
    assert ACCOUNTS["alex"].password not in caplog.text


def test_customer_signs_in_with_password_only(app):
    sign_in(app, "casey")

    text = landing_text(app)
    assert "casey" in text
    assert "Customer" in text
    assert "password only" in text
    assert not app.code, "no key is shown to a customer"


def test_wrong_password_shows_rejection(app):
    sign_in(app, "alex", "not-the-password")

    assert texts(app.error) == ["The portal, username or password is not correct."]
    assert texts(app.title) == ["Sign in"]
    assert_sign_in_form(app)


def test_wrong_code_keeps_code_form(app):
    sign_in(app, "alex")
    secret = shown_secret(app)
    right = pyotp.TOTP(secret).now()
    wrong = f"{(int(right) + 500_000) % 1_000_000:06d}"

    enter_code(app, wrong)

    assert len(app.error) == 1
    assert app.error[0].value.startswith("That code is not correct.")
    assert widget(app.text_input, "Authentication code")
    assert widget(app.button, "Verify")
    assert shown_secret(app) == secret, "the enrollment screen stays"


def test_bad_format_code_shows_message(app):
    sign_in(app, "alex")

    enter_code(app, "12ab56")

    assert len(app.error) == 1
    assert app.error[0].value.startswith("The code may contain only the digits 0-9")
    assert widget(app.text_input, "Authentication code")


def test_repeated_wrong_codes_lock_code_entry(app):
    authenticator = enroll(app, "alex")
    widget(app.button, "Sign out").click()
    app.run()
    sign_in(app, "alex")
    wrong = f"{(int(authenticator.now()) + 500_000) % 1_000_000:06d}"

    for _ in range(LOCK_AFTER_FAILURES):
        enter_code(app, wrong)

    assert len(app.error) == 1
    assert app.error[0].value.startswith("Too many wrong codes.")
    assert any(caption.startswith("Time left:") for caption in texts(app.caption))
    assert widget(app.text_input, "Authentication code")

    widget(app.button, "Sign in as someone else").click()
    app.run()
    sign_in(app, "alex")
    assert len(app.error) == 1
    assert app.error[0].value.startswith("Too many wrong codes.")
    assert any(caption.startswith("Time left:") for caption in texts(app.caption))
    assert_sign_in_form(app)


def test_expired_challenge_returns_to_form(app):
    enroll(app, "alex")
    widget(app.button, "Sign out").click()
    app.run()
    sign_in(app, "alex")
    app.session_state[state.CHALLENGE] = "no-such-challenge"

    enter_code(app, "123456")

    assert texts(app.title) == ["Sign in"]
    assert texts(app.error) == [
        "This sign-in has expired or was already completed. Sign in again."
    ]
    assert_sign_in_form(app)


def test_expired_enrollment_returns_to_form(app):
    sign_in(app, "alex")
    app.session_state[state.CHALLENGE] = "no-such-challenge"

    app.run()

    assert not app.exception
    assert texts(app.title) == ["Sign in"]
    assert len(app.error) == 1
    assert "expired" in app.error[0].value
    assert_sign_in_form(app)


def test_enrolled_user_gets_code_entry(app):
    authenticator = enroll(app, "alex")
    used_code = authenticator.now()
    widget(app.button, "Sign out").click()
    app.run()

    sign_in(app, "alex")

    assert texts(app.title) == ["Enter your code"]
    assert not app.code, "the key is not shown after enrollment"
    assert not app.image, "the QR code is not shown after enrollment"

    enter_code(app, used_code)
    assert len(app.error) == 1
    assert app.error[0].value.startswith("That code was already used.")
    assert texts(app.title) == ["Enter your code"]

    enter_code(app, next_step_code(authenticator))
    text = landing_text(app)
    assert "alex" in text
    assert "password and authentication code" in text


def test_unexpected_error_shows_short_message(app, monkeypatch, caplog):
    detail = "a message that quotes the code 123456"

    def fail(*args, **kwargs):
        raise RuntimeError(detail)

    monkeypatch.setattr("core.signin.submit_password", fail)

    sign_in(app, "alex")

    assert len(app.error) == 1
    assert app.error[0].value.startswith("Something went wrong")
    assert "RuntimeError" in caplog.text
    assert "123456" not in caplog.text
    assert ACCOUNTS["alex"].password not in caplog.text
