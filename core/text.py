"""Checks for text that arrives from people: it must encode as UTF-8 to reach the database."""

from __future__ import annotations


def is_text(value: object, max_chars: int = 100_000) -> bool:
    """Return True for a string of at most ``max_chars`` that encodes as UTF-8.

    Python strings can hold lone surrogates (from undecodable command-line
    bytes, for example), which no database driver accepts, and PostgreSQL
    rejects NUL characters in text.
    """
    if not isinstance(value, str) or len(value) > max_chars or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
