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


def test_names_do_not_match_inside_other_names_in_any_script() -> None:
    """Иван is not in Иванов, José not in Joséphine, Ann Smith not in Mary-Ann Smith nor in
    Ann Smith-Jones; each is found on its own."""
    for value, other, own in (("Иван", "Иванов", "Иван пришёл"),
                              ("José", "Joséphine", "José, hola"),
                              ("Ann Smith", "Mary-Ann Smith", "dear Ann Smith,"),
                              ("Ann Smith", "Ann Smith-Jones", "(Ann Smith)")):  # fmt: skip
        assert not Subject((value,)).matches(other), other
        assert Subject((value,)).matches(own), own


def test_written_forms_of_a_value_are_found_and_replaced() -> None:
    """After a written-out escape (hello\\nann@…), percent-encoded (ann%40…), with other
    spaces (a line break or a no-break space between the names), decomposed accents: all
    found, and all replaced."""
    ann = Subject(("ann@example.org",))
    swap = Pseudonymizer(ann, "erased-1")
    for text in ("hello\\nann@example.org", "q=%22ann%40example.org%22", "to=ann%40example.org"):
        assert ann.matches(text), text
        assert not ann.matches(swap(text)), swap(text)
    name = Subject(("José Núñez",))
    for text in ("José\nNúñez", "José\u00a0Núñez", "Jose\u0301 Nu\u0301n\u0303ez"):
        assert name.matches(text), repr(text)
        assert Pseudonymizer(name, "erased-2")(text) == "erased-2"


def test_a_number_that_is_the_value_is_replaced() -> None:
    """A phone number stored as a JSON number is found and becomes the pseudonym; other
    numbers stay."""
    swap = Pseudonymizer(Subject(("4155550123",)), "erased-3")
    assert swap({"phone": 4155550123, "count": 7}) == {"phone": "erased-3", "count": 7}


def test_edges_in_marks_encodings_unspaced_scripts_and_numbers() -> None:
    """A decomposed accent glues (Jose is not José written decomposed); an encoded letter or
    + before an address glues (bob%2Bann%40…), an encoded quote does not; Thai is written
    without spaces, so a name is found inside its sentence; a hyphen after digits does not
    glue (+49-1701234567), one between letters does (Mary-Ann)."""
    import unicodedata

    assert not Subject(("Jose",)).matches(unicodedata.normalize("NFD", "José Garcia"))
    ann = Subject(("ann@example.org",))
    assert not ann.matches("bob%2Bann%40example.org")
    assert not ann.matches("jo%2Eann@example.org")
    assert ann.matches("q=%22ann%40example.org%22")
    assert Subject(("สมชาย",)).matches("คุณสมชายใจดี")
    assert Subject(("1701234567",)).matches("+49-1701234567")
    assert not Subject(("Ann",)).matches("Mary-Ann")
