# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Phone value helpers shared by the modules.

LDAP has no empty string and Graph returns null, so absent, null, empty and blank values
are all "no number". Phone numbers are free text on both sides; ``normalise`` gives a form
for comparisons that ignore punctuation, never a value to write.
"""

from __future__ import annotations

import unicodedata

from ansible_collections.entraid.dirsync.plugins.module_utils._errors import InvalidInput

MAX_LENGTH = 64
# Separators people type between digit groups; a leading "+" is kept (it carries the country code).
_SEPARATORS = frozenset(" -./()\u00a0\u2010\u2011\u2012\u2013\u2014\t")
# What normalise drops from ASCII text: ASCII is its own NFKC form and its only decimal digits are 0-9, so one translate
# does what the general path does character by character.
_ASCII_DROPPED = {code: None for code in range(128) if chr(code) in _SEPARATORS or chr(code).isspace()}


def clean(value):
    """None for None / "" / whitespace-only, else the stripped string (non-strings unchanged)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _shorten(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def validate(value, field):
    """Check a value before it is written; return ``clean(value)``.

    Raises InvalidInput (saying which field and why) for non-strings, values longer than
    64 characters and control characters. None and blank values mean "no number".
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(
            "%s: %s is a %s, not a string. Quote the phone number in YAML; nothing was changed."
            % (field, _shorten(value), type(value).__name__), field=field)
    value = clean(value)
    if value is None:
        return None
    if len(value) > MAX_LENGTH:
        raise InvalidInput(
            "%s: %s is %d characters long; AD and Entra ID accept at most %d. Shorten it; nothing was changed."
            % (field, _shorten(value), len(value), MAX_LENGTH), field=field)
    for char in value:
        if unicodedata.category(char) == "Cc":
            raise InvalidInput(
                "%s: %s contains the control character U+%04X; remove it (phone numbers are one line of text). "
                "Nothing was changed." % (field, _shorten(value), ord(char)), field=field)
    return value


def _ascii_digit(char):
    """Every Unicode decimal digit (Arabic-Indic, Devanagari, fullwidth...) as its ASCII digit; other characters unchanged."""
    digit = unicodedata.decimal(char, None)
    return char if digit is None else str(digit)


def normalise(value):
    """A form for format-insensitive comparison, or None for no number.

    NFKC first (fullwidth "＋１" -> "+1"), every decimal digit to ASCII ("٤٢٥" -> "425"), then drops spaces,
    dashes, dots, slashes and parentheses and keeps a leading "+": "+1 425 555 0100" -> "+14255550100";
    "(425) 555-0100" -> "4255550100", which stays different from "+14255550100" because its country code is unknown.
    """
    value = clean(value)
    if value is None:
        return None
    if not isinstance(value, str):
        return value
    if value.isascii():
        return value.translate(_ASCII_DROPPED).lower() or value
    return _normalise_text(value)


def _normalise_text(value):
    """normalise's general path, for any text."""
    value = "".join(_ascii_digit(char) for char in unicodedata.normalize("NFKC", value))
    compact = "".join(char for char in value if char not in _SEPARATORS and not char.isspace()).lower()
    # Only punctuation: keep the text so it never equals "no number".
    return compact or value


def _key(value, ignore_format):
    return normalise(value) if ignore_format else clean(value)


def same(a, b, ignore_format=False):
    """True when two single values are equal (absent, null and empty are equal to each other)."""
    return _key(a, ignore_format) == _key(b, ignore_format)


def _keys(values, ignore_format):
    return frozenset(key for key in (_key(value, ignore_format) for value in values or ()) if key is not None)


def same_set(list_a, list_b, ignore_format=False):
    """True when two multi-valued attributes hold the same numbers, ignoring order, duplicates and blanks."""
    return _keys(list_a, ignore_format) == _keys(list_b, ignore_format)


def _unique(values, ignore_format):
    """Cleaned, non-blank values in order, without duplicates (by comparison key)."""
    seen = {}
    for value in values or ():
        key = _key(value, ignore_format)
        if key is not None and key not in seen:
            seen[key] = clean(value)
    return seen


def plan_multi(current, add=None, remove=None, set=None, ignore_format=False):  # pylint: disable=redefined-builtin
    """The list a multi-valued attribute (otherMobile) should hold, with microsoft.ad semantics.

    ``set`` wins over ``add``/``remove`` (``set=[]`` clears); otherwise ``remove`` then ``add``
    are applied to ``current``. Order and duplicates are ignored. Values already present keep
    their current spelling, so with ``ignore_format`` a number written differently is not
    replaced. Existing values come first in their current order, new values after.
    """
    existing = _unique(current, ignore_format)
    if set is not None:
        wanted = _unique(set, ignore_format)
        kept = [value for key, value in existing.items() if key in wanted]
        return kept + [value for key, value in wanted.items() if key not in existing]

    to_add = _unique(add, ignore_format)
    to_remove = _unique(remove, ignore_format)
    both = [value for key, value in to_add.items() if key in to_remove]
    if both:
        raise InvalidInput(
            "%s is listed in both add and remove; list each number in one of them only. Nothing was changed."
            % ", ".join(repr(value) for value in both))
    kept = [value for key, value in existing.items() if key not in to_remove]
    return kept + [value for key, value in to_add.items() if key not in existing]
