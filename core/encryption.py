"""Encryption of TOTP secrets at rest with Fernet (AES-128-CBC with HMAC-SHA256).

The keys come from ``TWOFA_SECRET_KEY`` (comma-separated) or from a key file
beside the database (one key per line). The first key encrypts; every key
decrypts, which lets a rotation re-encrypt secrets while the old key still
reads them. A key file is created, with mode 0600, only while the database
contains no encrypted secret, so a lost key is never silently replaced.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from core.errors import KeyProblem

log = logging.getLogger(__name__)

KEY_VARIABLE = "TWOFA_SECRET_KEY"
KEY_FILE_NAME = "twofa.key"


class SecretBox:
    """Encrypts TOTP secrets with the first key and decrypts them with any key."""

    def __init__(self, keys: bytes | str | list[bytes]) -> None:
        self.keys = split_keys(keys)
        if not self.keys:
            raise KeyProblem("no encryption key was given")
        try:
            self._fernet = MultiFernet([Fernet(key) for key in self.keys])
        except (ValueError, TypeError) as error:
            raise KeyProblem(
                "an encryption key is malformed: each must be 32 bytes in url-safe "
                "base64, as `python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'` prints"
            ) from error

    @classmethod
    def generate(cls) -> SecretBox:
        return cls(Fernet.generate_key())

    def encrypt(self, secret: bytes) -> bytes:
        return self._fernet.encrypt(secret)

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt a stored secret under the first key."""
        try:
            return self._fernet.rotate(bytes(token))
        except InvalidToken as error:
            raise KeyProblem(
                "a stored secret cannot be decrypted with any configured key"
            ) from error

    def decrypt(self, token: bytes) -> bytes:
        """Decrypt a stored secret, from memory when the same token was decrypted lately.

        Every code check decrypts, and Fernet's HMAC and AES cost about as much
        as the rest of the check. The cache is keyed by the token, so a new or
        re-encrypted secret is never served from an old entry.
        """
        # NOTE: decrypted secrets of recent checks stay in this process's memory,
        # which also contains the key that decrypts every stored secret.
        return self._decrypt_cached(bytes(token))

    @functools.lru_cache(maxsize=4096)  # noqa: B019 (one SecretBox lives as long as its process)
    def _decrypt_cached(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken as error:
            raise KeyProblem(
                "a stored secret cannot be decrypted with the configured key; "
                f"check {KEY_VARIABLE} or the key file"
            ) from error


def split_keys(keys: bytes | str | list[bytes]) -> list[bytes]:
    """Return the keys of a comma- or line-separated text, first key first."""
    if isinstance(keys, list):
        return [bytes(key) for key in keys]
    if isinstance(keys, str):
        try:
            keys = keys.encode("ascii")
        except UnicodeEncodeError as error:
            raise KeyProblem(
                "an encryption key contains non-ASCII characters"
            ) from error
    parts = keys.replace(b",", b"\n").split(b"\n")
    return [part.strip() for part in parts if part.strip()]


def write_key_file(key_file: Path, keys: list[bytes]) -> None:
    """Replace the key file atomically, readable by its owner only."""
    temporary = key_file.with_name(key_file.name + ".new")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(b"".join(key + b"\n" for key in keys))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, key_file)


def load_key(key_file: Path, database_has_secrets: bool) -> bytes:
    """Return the keys from the environment or ``key_file``, creating the file if allowed."""
    from_environment = os.environ.get(KEY_VARIABLE)
    if from_environment:
        try:
            return from_environment.encode("ascii")
        except UnicodeEncodeError as error:
            raise KeyProblem(f"{KEY_VARIABLE} contains non-ASCII characters") from error

    if key_file.exists():
        if key_file.stat().st_mode & 0o077:
            log.warning(
                "key file %s is readable by other users; run chmod 600 on it", key_file
            )
        return key_file.read_bytes().strip()

    if database_has_secrets:
        raise KeyProblem(
            f"the key file {key_file} is missing but the database contains encrypted secrets; "
            f"restore the key file or set {KEY_VARIABLE}; no new key was written"
        )

    key = Fernet.generate_key()
    key_file.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: never overwrite a key that another process created a moment ago.
    try:
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return key_file.read_bytes().strip()
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key + b"\n")
    log.info("created encryption key file %s", key_file)
    return key
