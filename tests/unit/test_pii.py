"""PII scanning and scrubbing: each of the nine types found, look-alikes left alone, spans exact."""

from __future__ import annotations

import pytest

from awe.ai.pii import TYPES, scan, scrub, scrub_value
from awe.core.errors import ValidationFailed


def found(text: str) -> list[tuple[str, str]]:
    """(type, text) of every finding."""
    return [(f.type, f.text) for f in scan(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe+news@mail.example.org now", ("email", "jane.doe+news@mail.example.org")),
        ("call +1 (415) 555-2671 today", ("phone", "+1 (415) 555-2671")),
        ("call (212) 555-0123 today", ("phone", "(212) 555-0123")),
        ("uk office +44 20 7946 0958", ("phone", "+44 20 7946 0958")),
        ("SSN: 123-45-6789.", ("ssn", "123-45-6789")),
        ("visa 4111 1111 1111 1111 exp", ("credit_card", "4111 1111 1111 1111")),
        ("amex 3782-822463-10005", ("credit_card", "3782-822463-10005")),
        ("pay to DE89 3704 0044 0532 0130 00 please", ("iban", "DE89 3704 0044 0532 0130 00")),
        ("IBAN GB82WEST12345698765432", ("iban", "GB82WEST12345698765432")),
        ("host 10.0.12.7 is down", ("ip_address", "10.0.12.7")),
        ("the host was 10.0.12.7.", ("ip_address", "10.0.12.7")),
        ("v6 2001:db8::8a2e:370:7334 up", ("ip_address", "2001:db8::8a2e:370:7334")),
        ('aws_key = "AKIAIOSFODNN7EXAMPLE"', ("secret", "AKIAIOSFODNN7EXAMPLE")),
        (
            "token=ghp_16C7e42F292c6912E7710c838347Ae178B4a",
            ("secret", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
        ),
        ('{"password": "correct-horse-battery"}', ("secret", "correct-horse-battery")),
        (
            "OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwx0123",
            ("secret", "sk-proj-abcdefghijklmnopqrstuvwx0123"),
        ),
        (
            "Authorization: Bearer abcdef0123456789ABCDEFxyz",
            ("secret", "abcdef0123456789ABCDEFxyz"),
        ),
        ("DOB: 1985-03-14", ("date_of_birth", "1985-03-14")),
        ("she was born on 3 May 1990 in Lyon", ("date_of_birth", "3 May 1990")),
        ("Date of birth: 07/04/1976", ("date_of_birth", "07/04/1976")),
        ("postgresql://admin:s3cret@db:5432/app", ("url_credentials", "admin:s3cret")),
    ],
)
def test_each_type_is_found_with_its_exact_span(text: str, expected: tuple[str, str]) -> None:
    """A value of each type is found, and the span is the value only (no key name, no quotes)."""
    assert found(text) == [expected]


@pytest.mark.parametrize(
    "text",
    [
        "order 12345 shipped on 2024-01-15",  # a date without a birth word
        "version 1.2.3.4.5 and v1.2.3.4",  # dotted versions, not addresses
        "999.1.1.1 is not an address",
        "serve on 127.0.0.1:8000, ::1 or 0.0.0.0",  # loopback and unspecified point at no one
        "card-like 4111 1111 1111 1112 fails Luhn",
        "GB82WEST12345698765433 has a bad checksum",
        "SSN 000-12-3456 and 666-12-3456 are never issued",
        "the password policy requires twelve characters",
        "pwd = os.getcwd()",
        "password: ${DB_PASSWORD}",
        "call me at 12:30:45",
        "user@localhost is not a routable address",
        "https://example.com/path?user=a",
    ],
)
def test_look_alikes_are_left_alone(text: str) -> None:
    """Precision first: dates, versions, bad checksums and placeholders are not findings."""
    assert found(text) == []


def test_offsets_index_the_original_text() -> None:
    """start and end are character offsets into the text (also after non-ASCII text)."""
    text = "Zoë — écrivez à zoë.martin@example.fr ou +33 1 42 68 53 00"
    for finding in scan(text):
        assert text[finding.start : finding.end] == finding.text
    assert [f.type for f in scan(text)] == ["email", "phone"]


def test_overlaps_go_to_the_more_specific_type() -> None:
    """URL credentials are not also an email or a secret; a card is not also a phone."""
    text = "smtp://mailer:Pa55word1@mail.example.com and 4111-1111-1111-1111"
    assert found(text) == [
        ("url_credentials", "mailer:Pa55word1"),
        ("credit_card", "4111-1111-1111-1111"),
    ]


def test_private_key_block_is_one_secret() -> None:
    """A PEM private key is one finding covering the whole block."""
    text = "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAbCd\n-----END RSA PRIVATE KEY-----\n"
    ((kind, value),) = found(text)
    assert kind == "secret"
    assert value.startswith("-----BEGIN")
    assert value.endswith("PRIVATE KEY-----")


def test_scrub_placeholders_are_stable_per_value() -> None:
    """The same value gets the same placeholder; a different value the next number."""
    text = "a@example.com wrote to b@example.com; then A@example.com called 4111 1111 1111 1111"
    result = scrub(text)
    assert result.text == "<EMAIL_1> wrote to <EMAIL_2>; then <EMAIL_1> called <CREDIT_CARD_1>"
    assert result.placeholders == {
        "<EMAIL_1>": "email",
        "<EMAIL_2>": "email",
        "<CREDIT_CARD_1>": "credit_card",
    }


def test_scrub_selected_types_and_json_values() -> None:
    """Only the chosen types are replaced; strings nested in JSON are scrubbed, keys kept."""
    text = "x@example.com from 10.1.2.3"
    assert scrub(text, types=["ip_address"]).text == "x@example.com from <IP_ADDRESS_1>"
    value = {"to": ["x@example.com"], "n": 3, "note": {"ip": "10.1.2.3"}}
    assert scrub_value(value) == {"to": ["<EMAIL_1>"], "n": 3, "note": {"ip": "<IP_ADDRESS_1>"}}
    with pytest.raises(ValidationFailed, match="unknown PII type"):
        scan(text, types=["emails"])
    assert len(TYPES) == 9
