"""Checks of user input shared by the pages and the JSON API.

Each returns the cleaned value or raises ``ValueError`` with a message fit to show.
"""

import unicodedata

from chatsite.rooms.conf import MAX_NICK, MAX_TEXT

# Line breaks and tabs belong in messages; other control characters do not
# (NUL is also refused by PostgreSQL text columns).
_TEXT_ALLOWED_CONTROLS = {"\n", "\r", "\t"}


def is_control(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Zl", "Zp")


# Categories a name may not hold: control (Cc), format (Cf: zero-width and bidi
# controls that make "adm\u200bin" look like "admin"), unassigned (Cn), surrogates
# (Cs), private use (Co), line and paragraph separators (Zl, Zp).
_NAME_REFUSED = {"Cc", "Cf", "Cn", "Cs", "Co", "Zl", "Zp"}
# Combining marks one character of a name may carry: enough for real scripts (Thai
# vowel and tone marks, Hebrew points, Vietnamese after NFKC), not for "Zalgo" text
# whose stacked marks spill over the lines around it.
MAX_MARKS = 3
_MARKS = {"Mn", "Me"}


def _too_many_marks(nick: str) -> bool:
    run = 0
    for index, char in enumerate(nick):
        if unicodedata.category(char) in _MARKS:
            run += 1
            if index == 0 or run > MAX_MARKS:
                return True
        else:
            run = 0
    return False


def clean_nick(value: str | None) -> str:
    """A display name: NFKC-normalised, trimmed, 1-40 characters, none of them
    control, format, unassigned or private-use characters, and at most ``MAX_MARKS``
    combining marks on one character."""
    nick = unicodedata.normalize("NFKC", value or "").strip()
    if not nick:
        raise ValueError("Please choose a name.")
    if len(nick) > MAX_NICK:
        raise ValueError(f"Names are at most {MAX_NICK} characters.")
    if any(is_control(c) for c in nick):
        raise ValueError("Names cannot contain control characters.")
    if any(unicodedata.category(c) in _NAME_REFUSED for c in nick):
        raise ValueError("Names cannot contain invisible, formatting or unassigned characters.")
    if _too_many_marks(nick):
        raise ValueError(f"Names cannot start with an accent or stack more than {MAX_MARKS} "
                         "on one letter.")
    return nick


def name_key(nick: str) -> str:
    """The form two names are compared in: NFKC, case-folded, NFKC again (folding can
    un-normalise), so "Ann", "ANN" and "Ａｎｎ" are one name."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", nick).casefold())


def clean_text(value: str | None) -> str:
    """A message text, kept verbatim (HTML included) but never empty or too long."""
    text = value or ""
    if not text.strip():
        raise ValueError("The message is empty.")
    if len(text) > MAX_TEXT:
        raise ValueError(f"Messages are at most {MAX_TEXT} characters (this one has {len(text)}).")
    if any(is_control(c) and c not in _TEXT_ALLOWED_CONTROLS for c in text):
        raise ValueError("Messages cannot contain control characters.")
    return text


def parse_cursor(value: str | None) -> int:
    """A message id from a query string: a non-negative integer, digits only."""
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 18:
        raise ValueError("expected a non-negative integer message id")
    return int(value)


def check_cursor_known(after: int, newest: int) -> int:
    """``after`` unless it is above ``newest``, the newest message id there is: a cursor
    from the future is refused rather than parked (it would wait for ids nobody has)."""
    if after > newest:
        raise ValueError(f"{after} is above the newest message id ({newest})")
    return after
