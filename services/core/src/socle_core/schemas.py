"""String types every service's input schemas share.

``Label`` is for what a person names or describes in one line and others read back: a
tenant's name, an agent's first and last name, a service account's name, the reason of a
suspension or a grant. It refuses control characters (C0, DEL, C1: a line break or an
escape sequence would forge lines in logs and terminals) and the Unicode characters that
reorder text (bidirectional embeddings, overrides, isolates and marks, line and paragraph
separators): with U+202E RIGHT-TO-LEFT OVERRIDE, "photo<U+202E>gpj.exe" reads "photoexe.jpg".
Ordinary text in any script, accents and emoji pass.

``label(max_length)`` is the field type, with its length limits (``name: label(200) | None``):
they are checked before the characters, so each error says what is wrong in plain words.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, StringConstraints

#: C0 and C1 controls, DEL, the Arabic letter mark, LRM/RLM, line/paragraph separators,
#: bidi embeddings and overrides (U+202A-U+202E) and isolates (U+2066-U+2069).
FORBIDDEN_IN_LABELS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def check_label(value: str) -> str:
    """``value`` unchanged, or a ValueError naming the first character a label may not hold."""
    found = FORBIDDEN_IN_LABELS.search(value)
    if found is not None:
        char = found.group()
        name = unicodedata.name(char, "caractère de contrôle")
        raise ValueError(
            f"le caractère U+{ord(char):04X} ({name}) en position {found.start() + 1} n'est pas accepté : "
            "un nom ou un libellé ne contient ni caractère de contrôle ni caractère qui inverse le sens du texte"
        )
    return value


def label(max_length: int, *, min_length: int = 1) -> Any:
    """The type of a one-line name or description of ``min_length`` to ``max_length`` characters."""
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length), AfterValidator(check_label)]


__all__ = ["FORBIDDEN_IN_LABELS", "check_label", "label"]
