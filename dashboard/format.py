"""Text helpers shared by the screens."""

from __future__ import annotations

import re

from core.admin import PROFILE_LABELS, SwitchResult
from core.signin import SignedInUser

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$])")


def escape_markdown(text: str) -> str:
    """Escape Markdown syntax, so that a name typed by an admin shows as typed."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", text)


def profile_label(user: SignedInUser) -> str:
    """Return the label of the internal profile, or a customer label when there is none."""
    if user.profile is None:
        return "Customer (no internal profile)"
    return PROFILE_LABELS.get(user.profile, user.profile)


def as_sentence(message: str) -> str:
    """Return a core error message as a sentence: capital first letter, final period.

    The core writes its messages in lower case without a period, so that they
    also read well inside a log line.
    """
    text = message.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "?", "!")) else f"{text}."


def describe_switch(result: SwitchResult) -> str:
    """Return the sentence that reports the outcome of the two-factor switch."""
    if not result.changed:
        word = "on" if result.enabled else "off"
        return f"Two-factor authentication was already {word}, so nothing changed."
    if result.enabled:
        return (
            "Two-factor authentication is on. Every internal user enrolls at the next "
            "sign-in."
        )
    return f"Two-factor authentication is off. {result.revoked} enrollment(s) were revoked."
