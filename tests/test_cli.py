"""The twofa command line, driven as a person would, with oathtool as the authenticator."""

import io
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
import zxingcpp
from PIL import Image

from tests.helpers import OPERATOR_PASSWORD, PASSWORDS, SEEN

pytestmark = pytest.mark.skipif(
    shutil.which("oathtool") is None,
    reason="oathtool is not installed (apt install oathtool)",
)

TWOFA = [sys.executable, "-m", "core.cli"]


@pytest.fixture
def env(tmp_path, db_url):
    """The environment of a fresh installation on the test's database."""
    environment = dict(os.environ)
    environment.pop("TWOFA_DATABASE_URL", None)
    environment.pop("TWOFA_SECRET_KEY", None)
    environment["TWOFA_DATA_DIR"] = str(tmp_path / "data")
    if not db_url.startswith("sqlite"):
        environment["TWOFA_DATABASE_URL"] = db_url
    return environment


def twofa(env, *args, stdin=""):
    return subprocess.run(
        [*TWOFA, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def oathtool(secret, at=None):
    command = ["oathtool", "--totp", "-b", secret]
    if at is not None:
        command += ["-N", f"@{at}"]
    code = subprocess.run(
        command, capture_output=True, text=True, check=True
    ).stdout.strip()
    SEEN.codes.add(code)
    return code


@pytest.fixture
def acme(env):
    assert twofa(env, "portal", "add", "acme", "--name", "Acme Billing").returncode == 0
    done = twofa(
        env,
        "user",
        "add",
        "acme",
        "boss",
        "--profile",
        "master-admin",
        "--password-stdin",
        stdin=PASSWORDS["boss"] + "\n",
    )
    assert done.returncode == 0, done.stderr
    # Once the portal has a Master Admin, adding users needs their sign-in.
    done = twofa(
        env,
        "user",
        "add",
        "acme",
        "sam@acme.test",
        "--profile",
        "standard",
        "--password-stdin",
        "--as",
        "boss",
        stdin=f"{PASSWORDS['sam@acme.test']}\n{PASSWORDS['boss']}\n",
    )
    assert done.returncode == 0, done.stderr
    done = twofa(
        env,
        "settings",
        "acme",
        "--two-factor",
        "on",
        "--as",
        "boss",
        stdin=PASSWORDS["boss"] + "\n",
    )
    assert done.returncode == 0, done.stderr
    assert "every internal user enrolls" in done.stdout
    return env


def enroll_interactively(env, username, qr_png):
    """Run `twofa login`, read the URI it prints, and answer with an oathtool code."""
    process = subprocess.Popen(
        [*TWOFA, "login", "acme", username, "--qr-png", str(qr_png)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    process.stdin.write(PASSWORDS[username] + "\n")
    process.stdin.flush()
    uri = None
    printed = []
    for line in process.stdout:
        printed.append(line)
        if line.startswith("Key URI: "):
            uri = line.removeprefix("Key URI: ").strip()
        if line.startswith("Enter the first code"):
            break
    assert uri is not None, "".join(printed)
    secret = re.search(r"secret=([A-Z2-7]+)", uri).group(1)
    SEEN.add_secret(secret)
    output, errors = process.communicate(oathtool(secret) + "\n", timeout=60)
    return process.returncode, uri, secret, "".join(printed) + output, errors


def test_enroll_and_sign_in_with_oathtool_codes(acme, tmp_path):
    qr_png = tmp_path / "qr.png"
    status, uri, secret, output, errors = enroll_interactively(
        acme, "sam@acme.test", qr_png
    )
    assert status == 0, errors
    assert "Signed in as 'sam@acme.test'" in output
    assert re.search(r"([A-Z2-7]{4} ){7}[A-Z2-7]{4}", output), "grouped secret missing"
    assert "█" in output, "terminal QR missing"

    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(qr_png.read_bytes())))
    assert [result.text for result in decoded] == [uri]

    next_step = oathtool(secret, at=int(time.time()) + 30)
    later = twofa(
        acme,
        "login",
        "acme",
        "sam@acme.test",
        stdin=f"{PASSWORDS['sam@acme.test']}\n{next_step}\n",
    )
    assert later.returncode == 0, later.stderr
    assert "with password and code" in later.stdout

    replay = twofa(
        acme,
        "login",
        "acme",
        "sam@acme.test",
        stdin=f"{PASSWORDS['sam@acme.test']}\n{next_step}\n",
    )
    assert replay.returncode == 1
    assert "already used" in replay.stderr


def test_wrong_password_exits_one(acme):
    done = twofa(acme, "login", "acme", "sam@acme.test", stdin="not-the-password\n")
    assert done.returncode == 1
    assert (
        done.stderr.strip() == "twofa: The portal, username or password is not correct."
    )


def test_settings_by_a_standard_user_is_rejected(acme, tmp_path):
    status, _, secret, _, errors = enroll_interactively(
        acme, "sam@acme.test", tmp_path / "q.png"
    )
    assert status == 0, errors
    code = oathtool(secret, at=int(time.time()) + 30)
    done = twofa(
        acme,
        "settings",
        "acme",
        "--two-factor",
        "off",
        "--as",
        "sam@acme.test",
        stdin=f"{PASSWORDS['sam@acme.test']}\n{code}\n",
    )
    assert done.returncode == 1
    assert "lacks the privilege" in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2


@pytest.mark.parametrize(
    "args",
    [
        ["portal", "add", "Bad Slug", "--name", "X"],
        ["portal", "add", "acme2", "--name", "A: B"],
        ["user", "add", "acme", "x", "--profile", "superuser", "--password-stdin"],
        ["audit", "acme", "[--json]"],
        [
            "support",
            "reset",
            "acme",
            "sam@acme.test",
            "--ticket",
            "",
            "--operator",
            "Jo",
        ],
        ["operator", "add", "-bad name"],
        ["audit", "acme", "--limit", "0"],
        ["audit", "nowhere"],
        ["nonsense"],
        [],
    ],
)
def test_bad_usage_exits_two(acme, args):
    done = twofa(acme, *args, stdin="Some-pass-1\n")
    assert done.returncode == 2, (args, done.stdout, done.stderr)
    assert done.stderr.strip(), "no message on stderr"
    assert "Traceback" not in done.stderr


def add_operator(env):
    """Run `twofa operator add` and confirm with an oathtool code; return the secret."""
    process = subprocess.Popen(
        [*TWOFA, "operator", "add", "Jo Ops"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    process.stdin.write(OPERATOR_PASSWORD + "\n")
    process.stdin.flush()
    secret = None
    for line in process.stdout:
        found = re.search(r"secret=([A-Z2-7]+)", line)
        if found:
            secret = found.group(1)
        if line.startswith("Enter the first code"):
            break
    assert secret is not None
    SEEN.add_secret(secret)
    output, errors = process.communicate(oathtool(secret) + "\n", timeout=60)
    assert process.returncode == 0, errors
    assert "confirmed" in output
    return secret


def test_support_reset_and_audit_json(acme, tmp_path):
    status, *_ = enroll_interactively(acme, "boss", tmp_path / "q.png")
    assert status == 0
    secret = add_operator(acme)
    code = oathtool(secret, at=int(time.time()) + 30)
    reset = [
        "support",
        "reset",
        "acme",
        "boss",
        "--ticket",
        "SUP-77",
        "--operator",
        "Jo Ops",
        "--requester-matches",
        "--called-back",
    ]

    missing = twofa(acme, *reset, stdin=f"{OPERATOR_PASSWORD}\n{code}\n")
    assert missing.returncode == 2
    assert "last Master Admin" in missing.stderr

    code = oathtool(secret, at=int(time.time()) + 60)
    done = twofa(
        acme, *reset, "--last-admin-confirmed", stdin=f"{OPERATOR_PASSWORD}\n{code}\n"
    )
    assert done.returncode == 0, done.stderr
    assert "audit event" in done.stdout

    listing = twofa(acme, "audit", "acme", "--json", "--limit", "5")
    assert listing.returncode == 0
    assert '"event": "support_reset"' in listing.stdout
    assert "SUP-77" in listing.stdout


def test_support_reset_with_a_wrong_operator_code_exits_one(acme):
    add_operator(acme)
    done = twofa(
        acme,
        "support",
        "reset",
        "acme",
        "boss",
        "--ticket",
        "SUP-78",
        "--operator",
        "Jo Ops",
        "--requester-matches",
        "--called-back",
        stdin=f"{OPERATOR_PASSWORD}\n000000\n",
    )
    assert done.returncode == 1
    assert "not correct" in done.stderr


def test_demo_seed_prints_sign_in_details(env):
    done = twofa(env, "demo-seed")
    assert done.returncode == 0, done.stderr
    assert "owner" in done.stdout
    again = twofa(env, "demo-seed")
    assert "Demo data created" not in again.stdout
    assert "owner" in again.stdout


def test_demo_seed_leaves_a_used_database_alone(acme):
    done = twofa(acme, "demo-seed")
    assert done.returncode == 0
    assert "no demo portal was added" in done.stdout
    assert "owner-demo-pass" not in done.stdout


def test_user_add_without_master_admin_sign_in_is_rejected(acme):
    done = twofa(
        acme,
        "user",
        "add",
        "acme",
        "mallory",
        "--profile",
        "master-admin",
        "--password-stdin",
        stdin="Mallory-pass-1\n",
    )
    assert done.returncode == 1
    assert "sign in as a Master Admin" in done.stderr
