"""Phone value helpers."""

import random
import string

import pytest

from ansible_collections.entraid.dirsync.plugins.module_utils import _phone
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import InvalidInput


@pytest.mark.parametrize("value, expected", [
    (None, None), ("", None), ("   ", None), (" +1 425 ", "+1 425"), ("+14255550100", "+14255550100"),
])
def test_clean(value, expected):
    assert _phone.clean(value) == expected


def test_validate_accepts_and_cleans():
    assert _phone.validate(" +1 425 555 0100 ", "mobile") == "+1 425 555 0100"
    assert _phone.validate(None, "mobile") is None
    assert _phone.validate("  ", "mobile") is None
    assert _phone.validate("1" * 64, "mobile") == "1" * 64


@pytest.mark.parametrize("value, reason", [
    (4255550100, "not a string"),
    ("1" * 65, "at most 64"),
    ("+1 425\n555", "control character"),
    ("+1\x00", "control character"),
])
def test_validate_rejects_with_field_and_reason(value, reason):
    with pytest.raises(InvalidInput) as info:
        _phone.validate(value, "otherMobile")
    assert "otherMobile" in str(info.value)
    assert reason in str(info.value)
    assert "nothing was changed" in str(info.value).lower()


def test_normalise():
    assert _phone.normalise("+1 425 555 0100") == "+14255550100"
    assert _phone.normalise("+1 (425) 555-0100") == "+14255550100"
    assert _phone.normalise("+1.425.555.0100") == "+14255550100"
    assert _phone.normalise("(425) 555-0100") == "4255550100"
    assert _phone.normalise("0049 / 89 123") == "004989123"
    assert _phone.normalise("  ") is None
    assert _phone.normalise("--") == "--"


def test_the_ascii_shortcut_of_normalise_gives_what_the_general_path_gives():
    rng = random.Random(16)
    texts = [chr(code) for code in range(128)] + ["".join(rng.choice(string.printable + "\x1c\x1f") for _position in range(rng.randrange(1, 20)))
                                                  for _text in range(2000)]
    for text in texts:
        cleaned = _phone.clean(text)
        if cleaned is not None:
            assert _phone.normalise(text) == _phone._normalise_text(cleaned), repr(text)  # pylint: disable=protected-access
    # Non-ASCII text takes the general path: fullwidth and Arabic-Indic digits, a non-breaking space.
    assert _phone.normalise("\uff0b\uff11 \u0664\u0662\u0665\u00a0555") == "+1425555"


def test_same():
    assert _phone.same(None, "")
    assert _phone.same(None, "  ")
    assert not _phone.same(None, "+1")
    assert not _phone.same("+1 425 555 0100", "+14255550100")
    assert _phone.same("+1 425 555 0100", "+14255550100", ignore_format=True)
    # The country code is unknown in the second form: never equal to an international number.
    assert not _phone.same("(425) 555-0100", "+14255550100", ignore_format=True)
    assert not _phone.same("--", None, ignore_format=True)


def test_same_set():
    assert _phone.same_set(["+1", "+2"], ["+2", "+1", "+1"])
    assert _phone.same_set(None, [])
    assert _phone.same_set([""], None)
    assert not _phone.same_set(["+1"], ["+1", "+2"])
    assert not _phone.same_set(["+1 425"], ["+1425"])
    assert _phone.same_set(["+1 425"], ["+1425"], ignore_format=True)


def test_plan_multi_set_wins_and_clears():
    assert _phone.plan_multi(["+1", "+2"], add=["+3"], remove=["+1"], set=["+9"]) == ["+9"]
    assert _phone.plan_multi(["+1", "+2"], set=[]) == []
    assert _phone.plan_multi(["+1", "+2"], set=["+2", "+1"]) == ["+1", "+2"]


def test_plan_multi_add_remove_ignore_order_and_duplicates():
    assert _phone.plan_multi(["+1", "+2"], add=["+2", "+3", "+3"]) == ["+1", "+2", "+3"]
    assert _phone.plan_multi(["+1", "+2"], remove=["+1", "+7"]) == ["+2"]
    assert _phone.plan_multi(None, add=["+1"]) == ["+1"]
    assert _phone.plan_multi(["+1", "+2"]) == ["+1", "+2"]


def test_plan_multi_keeps_existing_spelling_with_ignore_format():
    current = ["+1 425 555 0100"]
    assert _phone.plan_multi(current, set=["+14255550100"], ignore_format=True) == current
    assert _phone.plan_multi(current, add=["+14255550100"], ignore_format=True) == current
    assert _phone.plan_multi(current, remove=["+14255550100"], ignore_format=True) == []
    # Without ignore_format the spellings are different numbers.
    assert _phone.plan_multi(current, set=["+14255550100"]) == ["+14255550100"]


def test_plan_multi_refuses_value_in_add_and_remove():
    with pytest.raises(InvalidInput) as info:
        _phone.plan_multi([], add=["+1"], remove=["+1"])
    assert "'+1'" in str(info.value)
