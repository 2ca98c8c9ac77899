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

import phonenumbers
from detect_secrets.core.scan import scan_line
from detect_secrets.settings import transient_settings
from stdnum import iban, luhn

from awe.ai.pii import dates

Span = tuple[int, int]

# ------------------------------------------------------------------------------ email, URL

# Letters are Unicode letters: internationalised addresses (zoë@exemple.fr) are addresses too.
_EMAIL = re.compile(
    r"(?<![\w.%+-])[^\W_][\w.%+-]{0,63}@"
    r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,24}(?![\w-])"
)
_URL_CREDENTIALS = re.compile(
    r"\b[A-Za-z][A-Za-z0-9+.-]{1,15}://(?P<user>[^\s/:@]*):(?P<password>[^\s/@]+)@[\w.-]+"
)
# USER:PASSWORD@, ${DB_USER}:${DB_PASS}@, <user>:<password>@: documentation, not credentials.
_URL_PLACEHOLDER = re.compile(r"^(?:\$\{?\w+\}?|<[^>]*>|\{\{.*\}\}|[A-Z_]+|x+|\*+)$")


#: File extensions that follow "@2x" in image names (logo@2x.png), never a mail domain.
_FILE_TLDS = frozenset(
    {"png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "tif", "tiff", "pdf", "js",
     "mjs", "css", "map", "json", "xml", "woff", "woff2", "ttf", "otf"}
)  # fmt: skip


def emails(text: str) -> Iterator[Span]:
    """Email addresses; not a URL's user (https://bob@host), an SSH remote (git@host:org/repo)
    or an image name (logo@2x.png)."""
    for match in _EMAIL.finditer(text):
        start, end = match.span()
        domain = match.group().rsplit("@", 1)[1]
        if re.search(r"://[^\s/@?#&=]*$", text[max(0, start - 200) : start]):
            continue  # a URL's user name (or user:password), not a query's address
        if re.match(r":[\w.~-]*/", text[end : end + 200]):
            continue  # user@host:org/repo, an SSH or SCP remote
        if domain.rsplit(".", 1)[-1].lower() in _FILE_TLDS or re.match(r"\d+(?:\.\d+)?x\.", domain):
            continue  # logo@2x.png, icon@1.5x.webp
        yield start, end


def url_credentials(text: str) -> Iterator[Span]:
    """``user:password`` in URLs such as ``postgresql://user:password@host/db``."""
    for match in _URL_CREDENTIALS.finditer(text):
        if _URL_PLACEHOLDER.match(match.group("password")):
            continue
        yield (
            match.start("user") if match.group("user") else match.start("password"),
            match.end("password"),
        )


# ---------------------------------------------------------------------------------- phones


def phones(text: str, regions: tuple[str, ...] = ("US",)) -> Iterator[Span]:
    """Phone numbers phonenumbers finds valid, international or national to ``regions``."""
    seen: set[Span] = set()
    for region in regions:
        for match in phonenumbers.PhoneNumberMatcher(
            text, region, leniency=phonenumbers.Leniency.VALID
        ):
            span = (match.start, match.end)
            if span in seen or _not_a_phone(text, match.start, match.raw_string):
                continue
            seen.add(span)
            yield span


def _not_a_phone(text: str, start: int, raw: str) -> bool:
    """An id's number (INV-2019-128095, MND-2024-426396), an amount (1682.10) or a short
    dotted date (04.08.92): digits phonenumbers would accept, that are not a phone."""
    if re.search(r"[A-Za-z]{2,}-$", text[max(0, start - 8) : start]):
        return True
    return bool(re.fullmatch(r"\d+[.,]\d{2}|\d{1,2}\.\d{1,2}\.\d{2,4}", raw))


# -------------------------------------------------------------------- numbers with checksums

_SSN = re.compile(r"(?<![\d-])(\d{3})[- ](\d{2})[- ](\d{4})(?![\d-])")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}")


_SSN_NAMED = re.compile(
    r"(?i)\b(?:ssn|social security(?: number| no\.?)?|soc\. ?sec\.?(?: no\.?)?)\b"
    r"(?:\s+(?:on file|no\.?|number|nr\.?))?\s*[:#]?\s*"
    r"(?P<value>\d{9})(?!\d)"
)


_SSN_HEADER = re.compile(r"(?i)ssn|social[ _-]security(?:[ _-]n(?:umber|o))?")


def _ssn_ok(area: str, group: str, serial: str) -> bool:
    return not (area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000")


def ssns(text: str) -> Iterator[Span]:
    """US social security numbers written ddd-dd-dddd (or with spaces), or nine digits right
    after the word SSN, by the SSA's rules: area not 000, 666 or 900-999; group not 00;
    serial not 0000."""
    for match in _SSN.finditer(text):
        if _ssn_ok(*match.groups()):
            yield match.span()
    for match in _SSN_NAMED.finditer(text):
        value = match.group("value")
        if _ssn_ok(value[:3], value[3:5], value[5:]):
            yield match.span("value")
    for start, end in dates.column_cells(text, _SSN_HEADER):  # a table's "ssn" column
        value = re.sub(r"[- ]", "", text[start:end])
        if re.fullmatch(r"\d{9}", value) and _ssn_ok(value[:3], value[3:5], value[5:]):
            yield start, end


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
        or digits.startswith(("5018", "5020", "5038", "5893", "6304", "6759", "6761", "6762"))
        or digits.startswith("6763")  # Maestro
        or 2200 <= four <= 2204  # Mir
        or digits.startswith(("4011", "4312", "4389", "5067", "6277", "6362", "6363"))  # Elo
        or two in (60, 81, 82)  # RuPay
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
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![A-Za-z0-9_]|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}:){1,7}(?::|(?::?[0-9A-Fa-f]{1,4}){1,7})(?![\w:])"
)
# Section and version numbers read like addresses: §5.3.9.5, v2.1.0.4, version 1.2.3.4.
_NOT_AN_ADDRESS = re.compile(
    r"(?:§|\bv|\bver\.?|\bversion|\bsection|\babschnitt|\bart\.|\bversión|\bchapter)\s*/?$",
    re.IGNORECASE,
)


def _address(value: str, kind: type[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> bool:
    """A valid address that can point at someone: not loopback (127.0.0.1, ::1), not 0.0.0.0."""
    try:
        address = kind(value)
    except ValueError:
        return False
    return not (address.is_loopback or address.is_unspecified)


_VERSION_HEADER = re.compile(
    r"(?i)(?:[\w .-]{0,30}[ _.-])?(?:version|ver|agent|release|build)(?:[ _.-][\w .-]{0,30})?"
)


def ip_addresses(text: str) -> Iterator[Span]:
    """IPv4 and IPv6 addresses (a version like v1.2.3.4 is not one, nor is localhost)."""
    versions = set(dates.column_cells(text, _VERSION_HEADER))
    for match in _IPV4.finditer(text):
        if match.span() in versions:
            continue
        value = match.group()
        before = text[max(0, match.start() - 12) : match.start()]
        if _NOT_AN_ADDRESS.search(before):
            continue
        if _address(value, ipaddress.IPv4Address):
            yield match.span()
    for match in _IPV6.finditer(text):
        value = match.group()
        if value.count(":") >= 2 and _address(value, ipaddress.IPv6Address):
            yield match.span()


# ---------------------------------------------------------------------------- dates of birth

dates_of_birth = dates.dates_of_birth


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
#: Lines longer than this are scanned without detect-secrets' keyword plugin.
LONG_LINE = 1000
_LONG_LINE_PLUGINS = [name for name in _PLUGINS if name != "KeywordDetector"]
# detect-secrets' entropy plugins flag ordinary words; its formats do not cover these.
_EXTRA_TOKENS = re.compile(
    r"(?<![\w-])(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"  # OpenAI and Anthropic keys
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|gh[pousr]_[A-Za-z0-9]{30,}"  # GitHub
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|AKIA[0-9A-Z]{16})"  # AWS access key id
)
# A key that names a secret (api_key, AWS_SECRET_ACCESS_KEY, db_password, Passwort,
# mot_de_passe, contraseña, 비밀번호…), then ":" or "=", then the value (to a quote, a space, or a
# separator of a form body or a list).
# The secret word may have a prefix and a suffix only across a separator (AWS_SECRET_ACCESS_KEY,
# db.password), so that "secretary" and "tokens_used" are not keys; both are bounded (no
# backtracking over a long token).
# "Password" in the five languages (the one list the key, prose and digits rules share).
_LOGIN_WORDS = (
    r"passw(?:or)?d|passwort|kennwort|pwd|mot[ _-]de[ _-]passe|mdp|contrase(?:ñ|n)a|clave"
    r"|비밀번호|암호"
)
_KEY_NAMES = (
    rf"(?:[\w.-]{{0,40}}[_.-])?(?:api[_-]?key|apikey|secret|token|{_LOGIN_WORDS}"
    r"|access[_-]?key|private[_-]?key)(?:[_-][\w-]{0,40})?"
)
_ASSIGNED = re.compile(
    rf"(?i)(?<![\w.-])(?P<key>{_KEY_NAMES})[\"']?\s*[:=]\s*[\"']?"
    r"(?P<value>[^\s\"',;&]{6,})"
)
# Keys about a secret rather than holding one: token_type, password_min_length, token_url…
_ABOUT_A_SECRET = re.compile(
    r"(?i)[_-](?:type|count|len|length|url|uri|endpoint|name|lifetime|ttl|expir\w*|min\w*"
    r"|max\w*|policy|reset\w*|file|path|hint|prompt|field|label|id)\b"
)
_PASSWORD_WORD = re.compile(rf"(?i){_LOGIN_WORDS}")
# Prose and chat: "password is Xy7…", "Passwort … per Mail geschickt (!): …", "비밀번호를 보내
# 주셨습니다: …": a few words after the key, then the value. Only a value that looks made up
# (letters and digits, 8+ characters; no URL or address) counts, and not after words that say
# the text is about the password ("reset", "changed", "for user"…).
_SAID = re.compile(
    rf"(?i)(?<![\w-])(?:{_LOGIN_WORDS})"
    r"(?P<bridge>[^\n:=]{0,45}?[:=]\s*|\s+(?:is|ist|est|es|lautet|은|는)\s+)[\"']?"
    r"(?P<value>[^\s&\"',;]{8,})"
)
_MADE_UP = re.compile(r"^(?=.*[^\W\d_])(?=.*\d).{8,}$")
_ABOUT = re.compile(
    r"(?i)\b(?:reset|changed?|sent|expired?|updated?|set|at|for|user(?:name)?|link|failed"
    r"|incorrect|wrong|invalid|forgot|policy|length)\b"
)
# References to where a secret lives, not secrets: os.environ[...], process.env.KEY, ${VAR}.
_REFERENCE = re.compile(
    r"^(?:os\.environ|os\.getenv|process\.env|settings\.|config\.|env\.|self\.)"
    r"|^\$\{?\w+\}?$|\("
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
    lines: list[tuple[int, str]] = []
    offset = 0
    for line in text.splitlines(keepends=True):
        lines.append((offset, line))
        offset += len(line)
    # detect-secrets' keyword plugin takes time quadratic in a line's length when keywords
    # repeat ("password_password_…"): long lines go without it (_ASSIGNED below covers keys).
    short = [(at, line) for at, line in lines if len(line) <= LONG_LINE]
    long = [(at, line) for at, line in lines if len(line) > LONG_LINE]
    for plugins, chosen in ((_PLUGINS, short), (_LONG_LINE_PLUGINS, long)):
        if not chosen:
            continue
        with transient_settings({"plugins_used": [{"name": name} for name in plugins]}):
            for at_line, line in chosen:
                for found in scan_line(line):
                    value = found.secret_value
                    if not value or found.type == "Private Key":
                        continue
                    at = line.find(value)
                    if at >= 0:
                        start, end = _whole_token(line, at, at + len(value))
                        if _could_be_secret(line[start:end]):
                            yield at_line + start, at_line + end
    for match in _EXTRA_TOKENS.finditer(text):
        yield match.span()
    for pattern in (_ASSIGNED, _BEARER, _SAID):
        for match in pattern.finditer(text):
            value = match.group("value")
            value = value.rstrip(".,;:!?") if pattern is _SAID else value.rstrip(".")
            if pattern is _ASSIGNED and not _assigned_ok(match.group("key"), value):
                continue
            if pattern is _SAID and not _said_ok(match.group("bridge"), value):
                continue
            if _could_be_secret(value):
                yield match.start("value"), match.start("value") + len(value)


def _assigned_ok(key: str, value: str) -> bool:
    """A key that holds a secret (not its length, type or URL); digits only under a password
    key, or 16 or more of them."""
    if _ABOUT_A_SECRET.search(key):
        return False
    return not value.isdigit() or bool(_PASSWORD_WORD.search(key)) or len(value) >= 16


def _said_ok(bridge: str, value: str) -> bool:
    return (
        bool(_MADE_UP.match(value))
        and "://" not in value
        and "@" not in value
        and not _ABOUT.search(bridge)
    )


def _could_be_secret(value: str) -> bool:
    """Not code ("pwd = os.getcwd()"), a reference (os.environ[...], ${VAR}), a placeholder
    (<token>, xxx, YOUR_API_KEY_HERE) or too plain to be a secret."""
    return (
        not _PLACEHOLDER.match(value)
        and not _REFERENCE.search(value)
        and not re.fullmatch(r"[A-Z][A-Z_]*", value)  # YOUR_API_KEY_HERE, MY_SECRET
        and len(set(value)) > 3
    )
