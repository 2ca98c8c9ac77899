"""How a data subject's values are found and replaced: only where they stand on their own
(ann@… is not inside joann@…, a name is not inside a longer word, yet a Korean particle after a
name does not hide it), in any case, in JSON keys and strings but not JSON's own words, with
quotes and backslashes as they are; and a replacement leaves the rest of the text."""

from __future__ import annotations

from awe.services.erasure_rows import Pseudonymizer
from awe.services.subject_search import Subject


def test_an_address_is_found_only_on_its_own() -> None:
    """Inside a longer local part or host it is another address; around punctuation it is
    itself, in any case."""
    ann = Subject(("ann@example.org",))
    for text in ("mail ANN@Example.org today", "<ann@example.org>", "to: ann@example.org.",
                 '{"to": "ann@example.org"}', "ann@example.org,bob@x.io"):  # fmt: skip
        assert ann.matches(text), text
    for text in ("joann@example.org", "x.ann@example.org", "ann@example.org.uk",
                 "ann@example.organic.com", "ann@example.org-mirror.net"):  # fmt: skip
        assert not ann.matches(text), text


def test_names_and_values_stand_on_their_own() -> None:
    """A name is not found inside a longer word; a Korean particle after it does not hide
    it; a phone number with a leading + is found by its digits' ends."""
    assert Subject(("Lovelace",)).matches("Ada Lovelace's notes")
    assert not Subject(("Lovelace",)).matches("Lovelaces")
    assert Subject(("김민수",)).matches("김민수님께 보냈습니다")
    assert Subject(("+49 30 1234567",)).matches("call +49 30 1234567 now")
    assert not Subject(("+49 30 1234567",)).matches("+49 30 12345678")


def test_json_is_searched_by_its_keys_and_strings() -> None:
    """Keys and string values are searched (numbers as text); true/false/null are JSON's
    words and never match; a value with a quote matches as it is, not JSON-escaped."""
    assert Subject(("true",)).matches({"flag": True, "n": None}) is False
    assert Subject(("ada@x.io",)).matches({"ada@x.io": 1})
    assert Subject(("4155550123",)).matches({"phone": 4155550123})
    assert Subject(('O"Brien',)).matches({"name": 'Mr O"Brien'})


def test_replacement_keeps_the_rest() -> None:
    """Only the occurrences are replaced, in text, JSON keys and values, and bytes."""
    swap = Pseudonymizer(Subject(("ann@example.org",)), "erased-1")
    assert swap("from ANN@example.org to joann@example.org") == (
        "from erased-1 to joann@example.org")  # fmt: skip
    assert swap({"ann@example.org": ["cc ann@example.org", 3]}) == {"erased-1": ["cc erased-1", 3]}
    assert swap(b"x ann@example.org y") == b"x erased-1 y"
