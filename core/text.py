"""Text that renders differently from what it is.

Zero-width characters (U+200B–U+200D, U+2060, U+FEFF), bidirectional overrides and isolates
(U+202A–U+202E, U+2066–U+2069) and the other Unicode format characters (category Cf) are
invisible or reorder what is shown: `export\u200b_pdf` looks like `export_pdf` but is another
feature, and U+202E makes `fdp_tropxe` read as `export_pdf`. Control characters, line and
paragraph separators and lone surrogates have no place in an identifier either. Names and
keys that people read and pick from are refused when they contain any of them."""

import re
import unicodedata

_HIDDEN_CATEGORIES = frozenset({"Cf", "Cc", "Cs", "Zl", "Zp"})
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def hidden_character(value: str) -> str | None:
    """The first invisible, format or control character of `value`, or None."""
    if value.isascii():  # the common case, without a per-character loop
        found = _ASCII_CONTROL.search(value)
        return found.group() if found else None
    for char in value:
        if unicodedata.category(char) in _HIDDEN_CATEGORIES:
            return char
    return None


def hidden_character_error(value: str) -> str | None:
    """A message naming the first hidden character of `value`, or None when there is none."""
    char = hidden_character(value)
    if char is None:
        return None
    name = unicodedata.name(char, "a control character")
    return (
        f"Must not contain invisible, format or control characters (found U+{ord(char):04X}, {name}): "
        "they make different names look the same."
    )
