"""Key URIs, QR codes and grouped secrets, read back by independent decoders."""

import io

import pyotp
import pytest
import zxingcpp
from PIL import Image

from core import admin, provisioning, totp
from core.errors import InvalidValue

ACCOUNTS = [
    "sam@acme.test",
    "Jo Smith",
    "José Müller",
    "Łucja Żółć",
    "山田 太郎",
    "o'neil+billing@example.com",
]


@pytest.mark.parametrize("account", ACCOUNTS)
def test_qr_png_decodes_to_the_uri(account):
    secret = totp.generate_secret()
    uri = provisioning.key_uri(secret, "Acme Billing & Co", account)

    results = zxingcpp.read_barcodes(Image.open(io.BytesIO(provisioning.qr_png(uri))))

    assert len(results) == 1
    assert results[0].text == uri


@pytest.mark.parametrize("account", ACCOUNTS)
def test_uri_parses_back_with_pyotp(account):
    secret = totp.generate_secret()
    uri = provisioning.key_uri(secret, "Acme Billing", account)

    parsed = pyotp.parse_uri(uri)

    assert parsed.issuer == "Acme Billing"
    assert parsed.name == account
    assert parsed.secret == totp.encode_secret(secret)
    assert parsed.digits == 6
    assert parsed.interval == 30


def test_uri_leaves_out_default_parameters():
    uri = provisioning.key_uri(b"\x00" * 20, "Acme Billing", "sam@acme.test")
    assert uri == (
        "otpauth://totp/Acme%20Billing:sam%40acme.test"
        "?secret=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA&issuer=Acme%20Billing"
    )


def test_uri_names_non_default_parameters():
    uri = provisioning.key_uri(
        b"\x00" * 20, "A", "b", digits=8, period=60, algorithm="sha256"
    )
    assert uri.endswith("&algorithm=SHA256&digits=8&period=60")


def test_grouped_secret_has_groups_of_four():
    grouped = provisioning.group_secret(b"\xff" * 20)
    assert grouped == "7777 7777 7777 7777 7777 7777 7777 7777"
    assert totp.decode_secret(grouped) == b"\xff" * 20


def test_qr_text_is_block_characters():
    text = provisioning.qr_text(provisioning.key_uri(b"\x01" * 20, "Acme", "sam"))
    assert "█" in text
    assert len(text.splitlines()) > 20


@pytest.mark.parametrize(
    "issuer", ["Acme: Billing", "", "   ", "Acme\nBilling", "x" * 101]
)
def test_portal_with_unusable_issuer_is_rejected(ctx, issuer):
    with pytest.raises(InvalidValue):
        admin.create_portal(ctx, "acme", issuer)
    with pytest.raises(admin.NotFound):
        admin.portal_settings(ctx, "acme")


def test_colon_in_issuer_message_names_the_problem(ctx):
    with pytest.raises(InvalidValue, match="contains ':'"):
        admin.create_portal(ctx, "acme", "Acme: Billing")


@pytest.mark.parametrize("username", ["a:b", " lead", "trail ", "", "tab\tname"])
def test_unusable_username_is_rejected(ctx, username):
    admin.create_portal(ctx, "acme", "Acme Billing")
    with pytest.raises(InvalidValue):
        admin.add_user(ctx, "acme", username, "Some-pass-1", "standard")
