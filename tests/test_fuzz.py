"""Hypothesis fuzzing of typed codes, names, slugs, key URIs, the sign-in and the command line.

Property tests that take a database reuse it for all of their examples, so
each example compares the state before and after its own call.
"""

from __future__ import annotations

import io
import os
import re
import string
import subprocess
import sys
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest
import zxingcpp
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from sqlalchemy import func, select
from sqlmodel import SQLModel

from core import admin, operators, provisioning, reports, signin, totp
from core.codes import MAX_INPUT_CHARS, FormatProblem, normalise_code
from core.errors import (
    AlreadyExists,
    InvalidValue,
    PermissionDenied,
    TwoFactorError,
)
from core.models import AuditEvent, CodeThrottle, User
from core.signin import Reason, Status
from core.verification import LOCK_AFTER_FAILURES
from tests.helpers import (
    PASSWORDS,
    PERIOD,
    PROFILES,
    add_acme,
    add_operator,
    code_at,
    code_challenge,
    enroll,
    operator_session,
)

# Examples share the test's database, so the function-scoped fixture check
# does not apply. No example database is kept, so runs write no .hypothesis folder.
FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# ---------------------------------------------------------------------------
# Strategies.

# Characters that break naive parsers: separators, URI syntax, full-width
# forms, invisible and line-breaking characters, and other scripts' digits.
AWKWARD_CHARACTERS = list(
    " -\t\r\n\x0b\x1c\x7f\x85\u00a0\u200b\u200d\u2028\u3000\ufeff\uff0d"
    ":&#?%+/=@'\"\\<>"
    "０１９٠٣९"
)


def odd_text(with_nul: bool = True, max_size: int = 80) -> st.SearchStrategy[str]:
    """Return a strategy for text of any code point, lone surrogates and controls included."""
    awkward = AWKWARD_CHARACTERS + ["\x00"] if with_nul else AWKWARD_CHARACTERS
    characters = st.one_of(
        st.characters(exclude_characters="" if with_nul else "\x00"),
        st.characters(
            categories=["Cs", "Cc", "Cf", "Zs", "Zl", "Zp", "Nd", "No"],
            exclude_characters="" if with_nul else "\x00",
        ),
        st.sampled_from(awkward),
    )
    return st.text(characters, max_size=max_size)


ODD_TEXT = odd_text()
NOT_TEXT = st.one_of(
    st.binary(max_size=20),
    st.integers(),
    st.none(),
    st.floats(),
    st.lists(st.integers(0, 9), max_size=6),
)
ANYTHING = st.one_of(ODD_TEXT, NOT_TEXT)
# NOTE: text that core looks up in the database leaves out NUL here, because
# PostgreSQL raises on NUL. test_nul_in_looked_up_text covers that case alone.
LOOKUP_TEXT = odd_text(with_nul=False)

PLAUSIBLE_NAME = st.text(
    st.sampled_from(string.ascii_letters + string.digits + " .@_-+'&éüŁ山田"),
    min_size=1,
    max_size=40,
)
SLUG_LIKE = st.text(
    st.sampled_from(string.ascii_lowercase + string.digits + "-_ A"), max_size=70
)

DIGIT_FORMS = {
    "ascii": 0x30,
    "full-width": 0xFF10,  # folded to ASCII, so accepted
    "arabic-indic": 0x0660,  # rejected: only ASCII and full-width digits count
    "devanagari": 0x0966,
}
SEPARATORS = ["", "", " ", "-", "\u3000", "\uff0d", "  ", "--", " -", "\t", "_", "."]
SURROUNDINGS = ["", "", " ", "\t", "\r\n", "  \n", "\u3000", "\u00a0", "\x0b"]


@st.composite
def decorated_codes(draw, digits: str | None = None):
    """Draw a string of digits in some script, with separators and surrounding space."""
    if digits is None:
        length = draw(st.integers(1, 9))
        digits = draw(
            st.text(st.sampled_from(string.digits), min_size=length, max_size=length)
        )
    form = draw(
        st.sampled_from(
            ["ascii", "ascii", "full-width", "mixed", "arabic-indic", "devanagari"]
        )
    )
    typed_digits = []
    for digit in digits:
        chosen = (
            draw(st.sampled_from(["ascii", "full-width"])) if form == "mixed" else form
        )
        typed_digits.append(chr(DIGIT_FORMS[chosen] + int(digit)))
    for _ in range(draw(st.integers(0, 2))):
        typed_digits.insert(
            draw(st.integers(0, len(typed_digits))), draw(st.sampled_from(SEPARATORS))
        )
    before = draw(st.sampled_from(SURROUNDINGS))
    after = draw(st.sampled_from(SURROUNDINGS))
    return before + "".join(typed_digits) + after


# ---------------------------------------------------------------------------
# Independent statements of the documented input rules.


def expected_code(raw: object, digits: int) -> str | None:
    """Return the code that the documented rules accept for ``raw``, or None.

    The rules: at most 64 characters of printable ASCII, tab, line ends or
    full-width forms. Full-width forms fold to ASCII. Surrounding spaces, tabs
    and line ends are dropped, and one space or dash inside is allowed. What
    remains must be exactly ``digits`` ASCII digits.
    """
    if not isinstance(raw, str) or len(raw) > MAX_INPUT_CHARS:
        return None
    folded = []
    for character in raw:
        point = ord(character)
        if 0xFF01 <= point <= 0xFF5E:
            folded.append(chr(point - 0xFEE0))
        elif point == 0x3000:
            folded.append(" ")
        elif 0x20 <= point < 0x7F or character in "\t\r\n":
            folded.append(character)
        else:
            return None
    text = "".join(folded).strip(" \t\r\n")
    if not re.fullmatch(r"[0-9]+(?:[ -][0-9]+)?", text):
        return None
    code = text.replace(" ", "").replace("-", "")
    return code if len(code) == digits else None


def is_valid_slug(slug: object) -> bool:
    """Return True for 1 to 63 lower-case ASCII letters, digits and inner dashes."""
    if not isinstance(slug, str) or not 1 <= len(slug) <= 63:
        return False
    if slug.startswith("-") or slug.endswith("-"):
        return False
    return all(
        character in string.ascii_lowercase + string.digits + "-" for character in slug
    )


def is_usable_label(value: object) -> bool:
    """Return True for an issuer or account name that authenticator apps read back."""
    return (
        isinstance(value, str)
        and bool(value.strip())
        and len(value) <= provisioning.MAX_LABEL_CHARS
        and ":" not in value
        and value.isprintable()
    )


# ---------------------------------------------------------------------------
# Database state.


def table_rows(ctx) -> dict[str, list[tuple]]:
    """Return every row of every table, the audit log included, by table name."""
    rows = {}
    with ctx.engine.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            ordered = select(table).order_by(*table.primary_key.columns)
            rows[table.name] = [tuple(row) for row in connection.execute(ordered)]
    return rows


def audit_count(ctx) -> int:
    with ctx.engine.connect() as connection:
        return connection.execute(
            select(func.count()).select_from(AuditEvent)
        ).scalar_one()


def check_round_trip(uri: str, issuer: str, account: str, secret: bytes) -> None:
    """Check that pyotp and a plain urllib reading both return the issuer and account."""
    parsed = pyotp.parse_uri(uri)
    assert parsed.issuer == issuer
    assert parsed.name == account
    assert parsed.secret == totp.encode_secret(secret)
    assert parsed.digits == 6
    assert parsed.interval == 30

    parts = urlsplit(uri)
    assert parts.scheme == "otpauth"
    assert parts.netloc == "totp"
    label_issuer, label_account = parts.path.removeprefix("/").split(":")
    assert unquote(label_issuer) == issuer
    assert unquote(label_account) == account
    assert parse_qs(parts.query)["issuer"] == [issuer]


# ---------------------------------------------------------------------------
# Typed codes.


@settings(max_examples=200, deadline=None, database=None)
@given(raw=st.one_of(ANYTHING, decorated_codes()), digits=st.sampled_from([6, 8]))
@example(raw="１２３ ４５６", digits=6)
@example(raw=" 123-456\t", digits=6)
@example(raw="123\u3000456", digits=6)
@example(raw="-123456", digits=6)
@example(raw="123456-", digits=6)
@example(raw="12 34-56", digits=6)
@example(raw="\ud800" * 6, digits=6)
@example(raw="1" * 6 + " " * 60, digits=6)
def test_normalise_code_matches_rules(raw, digits):
    result = normalise_code(raw, digits)
    event(f"normalise_code: {result.problem or 'accepted'}")

    assert result.code == expected_code(raw, digits)
    if result.code is None:
        assert isinstance(result.problem, FormatProblem)
    else:
        assert result.problem is None
        assert re.fullmatch(rf"[0-9]{{{digits}}}", result.code)


@dataclass
class CodeEntry:
    """An enrolled user and the open sign-in that the fuzzed codes go to."""

    secret: str
    challenge: str


USER = "sam@acme.test"


def throttle_of(ctx, username: str) -> tuple[int, int]:
    with ctx.engine.connect() as connection:
        row = connection.execute(
            select(CodeThrottle.failures, CodeThrottle.locked_until)
            .join(User, User.id == CodeThrottle.user_id)
            .where(User.username == username)
        ).one()
    return row.failures, row.locked_until


def codes_near(secret: str, now: int) -> set[str]:
    """Return the codes of the steps that the window and the largest drift reach."""
    return {code_at(secret, now + offset * PERIOD) for offset in range(-4, 5)}


@pytest.fixture
def code_entry(ctx, clock) -> CodeEntry:
    add_acme(ctx)
    secret = enroll(ctx, USER)
    clock.advance(PERIOD)
    return CodeEntry(secret, code_challenge(ctx, USER))


def reopen(ctx, clock, entry: CodeEntry) -> None:
    """Wait out any lock, clear the failures with a right code, and open a new sign-in."""
    failures, locked_until = throttle_of(ctx, USER)
    if locked_until > ctx.now():
        clock.set(locked_until)
    clock.advance(PERIOD)
    if failures:
        challenge = code_challenge(ctx, USER)
        done = signin.submit_code(ctx, challenge, code_at(entry.secret, ctx.now()))
        assert done.status == Status.SIGNED_IN, done
        clock.advance(PERIOD)
    entry.challenge = code_challenge(ctx, USER)


@FUZZ
@given(data=st.data())
def test_submit_code_fuzz(ctx, clock, code_entry, data):
    right = code_at(code_entry.secret, ctx.now())
    # The previous step's code is inside the window, and a replay if it was used.
    previous = code_at(code_entry.secret, ctx.now() - PERIOD)
    typed = data.draw(
        st.one_of(
            ANYTHING,
            decorated_codes(),
            decorated_codes(digits=right),
            decorated_codes(digits=previous),
        ),
        label="typed",
    )
    failures, _ = throttle_of(ctx, USER)

    result = signin.submit_code(ctx, code_entry.challenge, typed)
    event(f"submit_code: {result.status} {result.reason or ''}")

    failures_after, locked_until = throttle_of(ctx, USER)
    normal_form = expected_code(typed, 6)
    if result.status == Status.SIGNED_IN:
        assert normal_form in codes_near(code_entry.secret, ctx.now())
        assert failures_after == 0
        reopen(ctx, clock, code_entry)
        return

    assert normal_form != right, "the right code with allowed decoration was rejected"
    assert failures_after == failures + 1, "a rejected code was not counted"
    assert result.failures == failures_after
    if result.status == Status.REJECTED:
        assert result.reason in (Reason.BAD_FORMAT, Reason.WRONG_CODE, Reason.REPLAY)
        assert (result.reason == Reason.BAD_FORMAT) == (normal_form is None)
        assert result.challenge == code_entry.challenge
        assert result.message
        return

    assert result.status == Status.LOCKED, result
    assert failures_after >= LOCK_AFTER_FAILURES
    assert locked_until > ctx.now()
    # While locked, any input returns LOCKED and is not counted again.
    again = signin.submit_code(ctx, code_entry.challenge, typed)
    assert again.status == Status.LOCKED
    assert throttle_of(ctx, USER)[0] == failures_after
    reopen(ctx, clock, code_entry)


# ---------------------------------------------------------------------------
# Portal slugs and names, usernames, issuer and account names.


@FUZZ
@given(
    slug=st.one_of(
        SLUG_LIKE, ODD_TEXT, st.sampled_from(["acme", "a", "a" * 63, "a" * 64])
    ),
    name=st.one_of(PLAUSIBLE_NAME, ODD_TEXT),
)
@example(slug="bad-", name="Bad")
@example(slug="ok", name=" padded name ")
@example(slug="acme\n", name="Acme")
def test_create_portal_fuzz(ctx, slug, name):
    existing_slugs = {portal.slug for portal in admin.list_portals(ctx)}
    before = table_rows(ctx)

    try:
        portal = admin.create_portal(ctx, slug, name)
    except (InvalidValue, AlreadyExists, PermissionDenied) as error:
        event(f"create_portal: {type(error).__name__}")
        assert table_rows(ctx) == before, (
            f"a failed create_portal changed rows: {error}"
        )
        creatable = (
            is_valid_slug(slug) and is_usable_label(name) and slug not in existing_slugs
        )
        assert not creatable, f"a valid new portal was rejected: {error}"
        return

    assert is_valid_slug(slug)
    assert slug not in existing_slugs
    assert portal.slug == slug
    assert portal.name == name.strip()
    settings_row = admin.portal_settings(ctx, slug)
    assert settings_row.two_factor_enabled is False
    secret = totp.generate_secret()
    uri = provisioning.key_uri(secret, portal.name, "sam")
    check_round_trip(uri, portal.name, "sam", secret)


USERNAMES = st.one_of(
    PLAUSIBLE_NAME,
    ODD_TEXT,
    st.sampled_from(["boss", "ann", " ann", "ann ", "a:b", "x" * 100, "x" * 101]),
)
PROFILE_CHOICES = st.one_of(
    st.sampled_from([*admin.PROFILE_NAMES, "customer"]),
    st.sampled_from(["", "root"]),
    ODD_TEXT,
)
NEW_PASSWORD = "Fuzzed-user-pass-3391"


@pytest.fixture
def boss(ctx) -> str:
    """Create portal acme with two-factor off and return the Master Admin's session."""
    return add_acme(ctx, two_factor=False)


@FUZZ
@given(username=USERNAMES, profile=PROFILE_CHOICES)
@example(username="ann", profile="standard")
@example(username="new\u200buser", profile="standard")
def test_add_user_fuzz(ctx, boss, username, profile):
    before = table_rows(ctx)

    try:
        admin.add_user(ctx, "acme", username, NEW_PASSWORD, profile, boss)
    except (InvalidValue, AlreadyExists, PermissionDenied) as error:
        event(f"add_user: {type(error).__name__}")
        after = table_rows(ctx)
        if isinstance(error, PermissionDenied):
            # A rejected action is audited, so only the audit log may grow.
            del before[AuditEvent.__tablename__], after[AuditEvent.__tablename__]
        assert after == before, f"a failed add_user changed rows: {error}"
        return

    assert is_usable_label(username)
    assert username == username.strip()
    with ctx.engine.connect() as connection:
        stored = connection.execute(
            select(User.username).where(User.username == username)
        ).all()
    assert [row.username for row in stored] == [username]
    signed_in = signin.submit_password(ctx, "acme", username, NEW_PASSWORD)
    assert signed_in.status == Status.SIGNED_IN, signed_in
    signin.sign_out(ctx, signed_in.session)
    secret = totp.generate_secret()
    uri = provisioning.key_uri(secret, "Acme Billing", username)
    check_round_trip(uri, "Acme Billing", username, secret)


LABELS = st.one_of(
    PLAUSIBLE_NAME,
    ODD_TEXT,
    st.text(st.sampled_from("ab &#?%+/=@:'\"\\<>"), min_size=1, max_size=12),
    st.text(st.sampled_from(string.hexdigits + "%"), min_size=1, max_size=12),
)


@settings(max_examples=200, deadline=None, database=None)
@given(issuer=LABELS, account=LABELS)
@example(issuer="Smith & Sons", account="o'neil+billing@example.com")
@example(issuer="100%25 #1?", account="a/b=c")
@example(issuer="  Acme", account="sam ")
def test_key_uri_round_trips(issuer, account):
    secret = totp.generate_secret()

    try:
        uri = provisioning.key_uri(secret, issuer, account)
    except InvalidValue:
        event("key_uri: InvalidValue")
        assert not (is_usable_label(issuer) and is_usable_label(account))
        return

    assert is_usable_label(issuer)
    assert is_usable_label(account)
    check_round_trip(uri, issuer, account, secret)


@settings(max_examples=12, deadline=None, database=None)
@given(issuer=LABELS, account=LABELS)
@example(issuer="Acme Billing & Co", account="山田 太郎")
def test_key_uri_qr_decodes(issuer, account):
    secret = totp.generate_secret()
    try:
        uri = provisioning.key_uri(secret, issuer, account)
    except InvalidValue:
        return

    image = Image.open(io.BytesIO(provisioning.qr_png(uri)))
    results = zxingcpp.read_barcodes(image)

    assert len(results) == 1
    assert results[0].text == uri


# ---------------------------------------------------------------------------
# The password step.

REAL_CREDENTIALS = st.sampled_from(
    [("acme", username, PASSWORDS[username]) for username in PROFILES]
)
CREDENTIALS = st.one_of(
    REAL_CREDENTIALS,
    st.tuples(
        st.one_of(
            st.sampled_from(["acme", "ACME", "acme ", "nowhere"]), LOOKUP_TEXT, NOT_TEXT
        ),
        st.one_of(st.sampled_from([*PROFILES, "BOSS", "boss "]), LOOKUP_TEXT, NOT_TEXT),
        st.one_of(st.sampled_from(sorted(PASSWORDS.values())), ANYTHING),
    ),
)


@FUZZ
@given(credentials=CREDENTIALS)
@example(credentials=("acme", "boss", PASSWORDS["boss"] + "\x00"))
@example(credentials=("acme", "boss", PASSWORDS["boss"].upper()))
@example(credentials=("acme", "boss", "\ud800" * 9))
def test_submit_password_never_raises(ctx, boss, credentials):
    portal, username, password = credentials

    result = signin.submit_password(ctx, portal, username, password)
    event(f"submit_password: {result.status}")

    real = (
        portal == "acme"
        and isinstance(username, str)
        and username in PROFILES
        and password == PASSWORDS[username]
    )
    if real:
        assert result.status == Status.SIGNED_IN, result
        signin.sign_out(ctx, result.session)
        return
    assert result.status == Status.REJECTED, result
    assert result.reason == Reason.INVALID_CREDENTIALS
    assert result.session is None
    assert result.challenge is None


# ---------------------------------------------------------------------------
# NUL characters in text that core looks up in the database.

NUL = "ac\x00me"
NUL_CALLS = {
    "password step portal": lambda ctx, boss, operator: signin.submit_password(
        ctx, NUL, "boss", "x"
    ),
    "password step username": lambda ctx, boss, operator: signin.submit_password(
        ctx, "acme", NUL, "x"
    ),
    "add_user portal": lambda ctx, boss, operator: admin.add_user(
        ctx, NUL, "zed", NEW_PASSWORD, "standard", boss
    ),
    "reset target": lambda ctx, boss, operator: admin.reset_enrollment(
        ctx, boss, "acme", NUL
    ),
    "operator sign-in name": lambda ctx, boss, operator: operators.sign_in_operator(
        ctx, NUL, "x", "123456"
    ),
    "audit filter username": lambda ctx, boss, operator: reports.audit_events(
        ctx, reports.Viewer(operator_session=operator), username=NUL
    ),
}


@pytest.mark.parametrize("call", NUL_CALLS.values(), ids=NUL_CALLS.keys())
def test_nul_in_looked_up_text(request, ctx, db_url, boss, call):
    operator = operator_session(ctx, add_operator(ctx))
    before = table_rows(ctx)
    audit_rows = audit_count(ctx)

    try:
        result = call(ctx, boss, operator)
    except TwoFactorError:
        result = None

    if isinstance(result, (signin.SignInResult, operators.OperatorSignIn)):
        assert result.status == "rejected", result
    after = table_rows(ctx)
    del before[AuditEvent.__tablename__], after[AuditEvent.__tablename__]
    assert after == before
    # A rejection may leave one audit row.
    assert audit_count(ctx) <= audit_rows + 1


# ---------------------------------------------------------------------------
# Command-line misuse.

TWOFA = [sys.executable, "-m", "core.cli"]
# Python passes undecodable argument bytes on as lone surrogate escapes.
NOT_UTF8_SLUG = os.fsdecode(b"ac\xffme")
NOT_UTF8_NAME = os.fsdecode(b"Acme \xff\xfe Billing")
NEW_USER_STDIN = "Zed-pass-12345\n"


def misuse_params(cases):
    """Turn (case, arguments, standard input, known bug or None) rows into pytest params."""
    return [
        pytest.param(
            arguments,
            stdin,
            id=case,
            marks=[pytest.mark.xfail(strict=True, reason=bug)] if bug else [],
        )
        for case, arguments, stdin, bug in cases
    ]


# Rejected by argparse before the command opens any database.
PARSER_MISUSE = [
    ("no command", [], "", None),
    ("unknown command", ["frobnicate"], "", None),
    ("unknown option", ["audit", "acme", "--colour"], "", None),
    ("unknown subcommand", ["portal", "remove", "acme"], "", None),
    ("missing portal", ["audit"], "", None),
    ("missing name option", ["portal", "add", "newco"], "", None),
    ("missing username", ["login", "acme"], "", None),
    ("missing --as", ["settings", "acme", "--two-factor", "on"], "", None),
    (
        "bad profile",
        ["user", "add", "acme", "zed", "--profile", "superuser", "--password-stdin"],
        NEW_USER_STDIN,
        None,
    ),
    (
        "window too large",
        ["settings", "acme", "--window", "9", "--as", "boss"],
        "",
        None,
    ),
    (
        "window not a number",
        ["settings", "acme", "--window", "two", "--as", "boss"],
        "",
        None,
    ),
    (
        "bad switch value",
        ["settings", "acme", "--two-factor", "maybe", "--as", "boss"],
        "",
        None,
    ),
    ("limit zero", ["audit", "acme", "--limit", "0"], "", None),
    (
        "profile not UTF-8",
        ["user", "add", "acme", "zed", "--profile", NOT_UTF8_NAME],
        "",
        None,
    ),
    ("newline in an extra argument", ["audit", "acme", "extra\nline"], "", None),
]

# Rejected by core after the command opened the database.
CORE_MISUSE = [
    ("slug with a space", ["portal", "add", "new co", "--name", "New Co"], "", None),
    ("unknown portal", ["audit", "nowhere"], "", None),
    ("empty portal name", ["portal", "add", "newco", "--name", ""], "", None),
    (
        "empty username",
        ["user", "add", "acme", "", "--profile", "standard", "--password-stdin"],
        NEW_USER_STDIN,
        None,
    ),
    (
        "empty username with --as",
        [
            "user",
            "add",
            "acme",
            "",
            "--profile",
            "standard",
            "--password-stdin",
            "--as",
            "boss",
        ],
        NEW_USER_STDIN + PASSWORDS["boss"] + "\n",
        None,
    ),
    ("empty operator name", ["operator", "add", ""], "Operator-pass-1234\n", None),
    (
        "ticket with a space",
        [
            "support",
            "reset",
            "acme",
            "boss",
            "--ticket",
            "SUP 1",
            "--operator",
            "Jo Ops",
        ],
        "",
        None,
    ),
    ("slug not UTF-8", ["portal", "add", NOT_UTF8_SLUG, "--name", "New Co"], "", None),
    ("name not UTF-8", ["portal", "add", "newco", "--name", NOT_UTF8_NAME], "", None),
    ("portal not UTF-8", ["audit", NOT_UTF8_SLUG], "", None),
    (
        "username not UTF-8",
        [
            "user",
            "add",
            "acme",
            os.fsdecode(b"z\xffed"),
            "--profile",
            "standard",
            "--password-stdin",
        ],
        NEW_USER_STDIN,
        None,
    ),
    (
        "ticket not UTF-8",
        [
            "support",
            "reset",
            "acme",
            "boss",
            "--ticket",
            os.fsdecode(b"SUP-\xff"),
            "--operator",
            "Jo Ops",
        ],
        "",
        None,
    ),
]


def cli_environment(data_dir, db_url: str | None = None) -> dict[str, str]:
    """Return the environment of a CLI whose database and key file are in ``data_dir``."""
    environment = dict(os.environ)
    for variable in ("TWOFA_DATABASE_URL", "TWOFA_SECRET_KEY", "TWOFA_LOG_LEVEL"):
        environment.pop(variable, None)
    environment["TWOFA_DATA_DIR"] = str(data_dir)
    if db_url is not None and not db_url.startswith("sqlite"):
        environment["TWOFA_DATABASE_URL"] = db_url
    return environment


@pytest.fixture
def cli_env(ctx, db_url, tmp_path) -> dict[str, str]:
    """Seed portal acme through core and return a CLI environment on the same database."""
    add_acme(ctx)
    # The ctx fixture keeps its SQLite file and key file in tmp_path, where the CLI looks.
    return cli_environment(tmp_path, db_url)


def run_usage_error(environment: dict[str, str], arguments: list[str], stdin: str):
    """Run the CLI and check exit status 2 with one line on stderr and no traceback."""
    done = subprocess.run(
        [*TWOFA, *arguments],
        input=stdin.encode(),
        capture_output=True,
        env=environment,
        timeout=60,
    )
    errors = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2, (arguments, errors)
    assert "Traceback" not in errors
    assert len(errors.rstrip("\n").split("\n")) == 1, errors
    assert errors.startswith("twofa"), errors


def check_parser_misuse(tmp_path, arguments: list[str], stdin: str = "") -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)

    run_usage_error(cli_environment(data_dir), arguments, stdin)

    assert list(data_dir.iterdir()) == [], "a usage error created files"


@pytest.mark.parametrize(("arguments", "stdin"), misuse_params(PARSER_MISUSE))
def test_cli_parser_misuse(tmp_path, arguments, stdin):
    check_parser_misuse(tmp_path, arguments, stdin)


@pytest.mark.parametrize(("arguments", "stdin"), misuse_params(CORE_MISUSE))
def test_cli_core_misuse(ctx, cli_env, arguments, stdin):
    before = table_rows(ctx)

    run_usage_error(cli_env, arguments, stdin)

    assert table_rows(ctx) == before, "a usage error changed the database"


CLI_WORDS = [
    "init-db",
    "portal",
    "add",
    "user",
    "login",
    "settings",
    "reset",
    "support",
    "operator",
    "confirm",
    "audit",
    "demo-seed",
    "acme",
    "boss",
    "--as",
    "--name",
]
# Random words leave out NUL, which no argument can carry, and lone surrogates,
# which os.fsencode cannot encode. They leave out line breaks, because the
# newline case above is a known bug. No word starts with a dash, so none is
# read as an option such as --help.
CLI_TEXT = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00\n\r"),
    max_size=12,
).filter(lambda word: not word.startswith("-"))


@st.composite
def wrong_argument_lists(draw) -> list[str]:
    """Draw words with one unknown option among them, which argparse must reject."""
    words = draw(st.lists(st.one_of(st.sampled_from(CLI_WORDS), CLI_TEXT), max_size=5))
    letters = st.sampled_from(string.ascii_lowercase)
    option = "--zz-" + draw(st.text(letters, min_size=1, max_size=6))
    words.insert(draw(st.integers(0, len(words))), option)
    return words


@settings(
    max_examples=5,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(arguments=wrong_argument_lists())
def test_cli_random_misuse(tmp_path, arguments):
    check_parser_misuse(tmp_path, arguments)
