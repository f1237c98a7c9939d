"""Text helpers shared by the screens."""

from __future__ import annotations

import re

from core.admin import PROFILE_LABELS
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
