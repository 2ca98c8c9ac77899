"""One detector per kind of personal or secret data; each yields (start, end) spans of values.

Precision first: a candidate found by a pattern counts only once a validator accepts it —
phonenumbers for phones, python-stdnum for IBANs (checksum) and card numbers (Luhn), the SSA's
rules for SSNs, ``ipaddress`` for IPs, detect-secrets for known token formats. A span covers the
sensitive value only: a secret's value without its key name or quotes, ``user:password`` of a
URL, the date of a date of birth.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from datetime import date

import phonenumbers
from detect_secrets.core.scan import scan_line
from detect_secrets.settings import transient_settings
from stdnum import iban, luhn

Span = tuple[int, int]

# ------------------------------------------------------------------------------ email, URL

# Letters are Unicode letters: internationalised addresses (zoë@exemple.fr) are addresses too.
_EMAIL = re.compile(
    r"(?<![\w.%+-])[^\W_][\w.%+-]{0,63}@"
    r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,24}(?![\w-])"
)
_URL_CREDENTIALS = re.compile(
    r"\b[A-Za-z][A-Za-z0-9+.-]{1,15}://(?P<user>[^\s/:@]+):(?P<password>[^\s/@]+)@[\w.-]+"
)


def emails(text: str) -> Iterator[Span]:
    """Email addresses."""
    for match in _EMAIL.finditer(text):
        yield match.span()


def url_credentials(text: str) -> Iterator[Span]:
    """``user:password`` in URLs such as ``postgresql://user:password@host/db``."""
    for match in _URL_CREDENTIALS.finditer(text):
        yield match.start("user"), match.end("password")


# ---------------------------------------------------------------------------------- phones


def phones(text: str, regions: tuple[str, ...] = ("US",)) -> Iterator[Span]:
    """Phone numbers phonenumbers finds valid, international or national to ``regions``."""
    seen: set[Span] = set()
    for region in regions:
        for match in phonenumbers.PhoneNumberMatcher(
            text, region, leniency=phonenumbers.Leniency.VALID
        ):
            span = (match.start, match.end)
            if span not in seen:
                seen.add(span)
                yield span


# -------------------------------------------------------------------- numbers with checksums

_SSN = re.compile(r"(?<![\d-])(\d{3})[- ](\d{2})[- ](\d{4})(?![\d-])")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}")


def ssns(text: str) -> Iterator[Span]:
    """US social security numbers written ddd-dd-dddd (or with spaces), by the SSA's rules:
    area not 000, 666 or 900-999; group not 00; serial not 0000."""
    for match in _SSN.finditer(text):
        area, group, serial = match.groups()
        if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
            continue
        yield match.span()


def _card_brand_ok(digits: str) -> bool:
    """The number starts like a card of a real scheme (Visa, Mastercard, Amex, Discover…)."""
    two, four = int(digits[:2]), int(digits[:4])
    return (
        digits[0] == "4"  # Visa
        or 51 <= two <= 55
        or 2221 <= four <= 2720  # Mastercard
        or two in (34, 37)  # American Express
        or two in (36, 38, 39)
        or 300 <= int(digits[:3]) <= 305  # Diners
        or digits.startswith(("6011", "65"))
        or 644 <= int(digits[:3]) <= 649  # Discover
        or 3528 <= four <= 3589  # JCB
        or two == 62  # UnionPay
    )


def credit_cards(text: str) -> Iterator[Span]:
    """Card numbers: 13 to 19 digits (spaces or dashes between), a known scheme, Luhn-valid."""
    for match in _CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        plausible = 13 <= len(digits) <= 19 and len(set(digits)) > 1 and _card_brand_ok(digits)
        if plausible and luhn.is_valid(digits):
            yield match.span()


def ibans(text: str) -> Iterator[Span]:
    """IBANs whose country length and mod-97 checksum are right (python-stdnum)."""
    for match in _IBAN.finditer(text):
        candidate = match.group()
        # The pattern may run into following capitals ("... 00 AND"): try shorter ends too.
        for end in range(len(candidate), 14, -1):
            if candidate[end - 1] != " " and iban.is_valid(candidate[:end]):
                yield match.start(), match.start() + end
                break


# ------------------------------------------------------------------------------------- IPs

# Not inside a longer dotted run (1.2.3.4.5, v1.2.3.4); a sentence's full stop may follow.
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}:){1,7}(?::|(?::?[0-9A-Fa-f]{1,4}){1,7})(?![\w:])"
)


def _address(value: str, kind: type[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> bool:
    """A valid address that can point at someone: not loopback (127.0.0.1, ::1), not 0.0.0.0."""
    try:
        address = kind(value)
    except ValueError:
        return False
    return not (address.is_loopback or address.is_unspecified)


def ip_addresses(text: str) -> Iterator[Span]:
    """IPv4 and IPv6 addresses (a version like v1.2.3.4 is not one, nor is localhost)."""
    for match in _IPV4.finditer(text):
        if _address(match.group(), ipaddress.IPv4Address):
            yield match.span()
    for match in _IPV6.finditer(text):
        value = match.group()
        if value.count(":") >= 2 and _address(value, ipaddress.IPv6Address):
            yield match.span()


# ---------------------------------------------------------------------------- dates of birth

_MONTHS = (
    "jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    "|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
_DATE = re.compile(
    r"(?P<iso>\d{4}-\d{2}-\d{2})"
    r"|(?P<num>\d{1,2}[/.-]\d{1,2}[/.-]\d{4})"
    rf"|(?P<mdy>(?:{_MONTHS})\.? \d{{1,2}}(?:st|nd|rd|th)?,? \d{{4}})"
    rf"|(?P<dmy>\d{{1,2}}(?:st|nd|rd|th)? (?:of )?(?:{_MONTHS})\.?,? \d{{4}})",
    re.IGNORECASE,
)
_BIRTH = re.compile(
    r"\b(?:born|birth|birthday|birthdate|dob|d\.o\.b\.?|date of birth|geboren|née?)\b",
    re.IGNORECASE,
)
#: How far before a date its "born on" / "DOB:" may stand.
CONTEXT_CHARS = 40


def _year(value: str) -> int | None:
    found = re.findall(r"\d{4}", value)
    return int(found[-1]) if found else None


def dates_of_birth(text: str) -> Iterator[Span]:
    """Dates with a birth word shortly before them ("DOB: 1985-03-14", "born on 3 May 1990")."""
    this_year = date.today().year
    for match in _DATE.finditer(text):
        year = _year(match.group())
        if year is None or not 1900 <= year <= this_year:
            continue
        before = text[max(0, match.start() - CONTEXT_CHARS) : match.start()]
        if _BIRTH.search(before):
            yield match.span()


# ----------------------------------------------------------------------------------- secrets

_PLUGINS = [
    "ArtifactoryDetector",
    "AWSKeyDetector",
    "AzureStorageKeyDetector",
    "CloudantDetector",
    "DiscordBotTokenDetector",
    "GitHubTokenDetector",
    "GitLabTokenDetector",
    "IbmCloudIamDetector",
    "IbmCosHmacDetector",
    "JwtTokenDetector",
    "KeywordDetector",
    "MailchimpDetector",
    "NpmDetector",
    "OpenAIDetector",
    "PrivateKeyDetector",
    "PypiTokenDetector",
    "SendGridDetector",
    "SlackDetector",
    "SoftlayerDetector",
    "SquareOAuthDetector",
    "StripeDetector",
    "TelegramBotTokenDetector",
    "TwilioKeyDetector",
]
# detect-secrets' entropy plugins flag ordinary words; its formats do not cover these.
_EXTRA_TOKENS = re.compile(
    r"(?<![\w-])(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"  # OpenAI and Anthropic keys
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|gh[pousr]_[A-Za-z0-9]{30,}"  # GitHub
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|AKIA[0-9A-Z]{16})"  # AWS access key id
)
_ASSIGNED = re.compile(
    r"(?i)\b(?:api[_-]?key|apikey|secret(?:[_-]?key)?|client[_-]?secret|access[_-]?(?:key|token)"
    r"|auth[_-]?token|token|passw(?:or)?d|pwd)\b[\"']?\s*[:=]\s*[\"']?(?P<value>[^\s\"',;]{6,})"
)
_BEARER = re.compile(r"\b[Bb]earer\s+(?P<value>[A-Za-z0-9\-._~+/]{16,}=*)")
_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL
)
_TOKEN_START = re.compile(r"[A-Za-z0-9_\-+/~]")  # not "=": that is the assignment before it
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_\-+/=.~]")
_PLACEHOLDER = re.compile(
    r"^(?:\$\{?\w+\}?|<[^>]*>|\{\{.*\}\}|x+|\*+|changeme|redacted|none|null)$", re.I
)


def _whole_token(line: str, start: int, end: int) -> Span:
    """Widen a match to the whole token it is part of (detect-secrets may report a prefix)."""
    while start > 0 and _TOKEN_START.match(line[start - 1]):
        start -= 1
    while end < len(line) and _TOKEN_CHARS.match(line[end]):
        end += 1
    return start, end


def secrets(text: str) -> Iterator[Span]:
    """API keys, tokens, passwords given a value, and private key blocks."""
    for match in _PRIVATE_KEY.finditer(text):
        yield match.span()
    offset = 0
    with transient_settings({"plugins_used": [{"name": name} for name in _PLUGINS]}):
        for line in text.splitlines(keepends=True):
            for found in scan_line(line):
                value = found.secret_value
                if not value or found.type == "Private Key":
                    continue
                at = line.find(value)
                if at >= 0:
                    start, end = _whole_token(line, at, at + len(value))
                    if not _PLACEHOLDER.match(line[start:end]):
                        yield offset + start, offset + end
            offset += len(line)
    for match in _EXTRA_TOKENS.finditer(text):
        yield match.span()
    for pattern in (_ASSIGNED, _BEARER):
        for match in pattern.finditer(text):
            value = match.group("value").rstrip(".")
            # Code ("pwd = os.getcwd()") and placeholders are not secrets.
            if not _PLACEHOLDER.match(value) and len(set(value)) > 3 and "(" not in value:
                yield match.start("value"), match.start("value") + len(value)
