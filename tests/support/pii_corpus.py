"""A labelled corpus of realistic texts for measuring the PII detector (``awe.ai.pii.scan``).

``corpus()`` builds 200 texts (10 kinds x 5 languages x 4 variants) from templates whose
``⟦slot⟧`` placeholders are filled by a seeded generator, so each gold span's offsets come from
the rendering itself, never from hand counting. A text is a dict::

    {"id", "kind", "lang", "text", "regions",        # regions: pass as scan(phone_regions=...)
     "spans": [{"type", "start", "end"}],            # gold PII, in text order
     "negatives": [{"kind", "start", "end"}]}        # hard negatives (look-alikes), not PII

Gold spans follow the detector's conventions: a secret's value without key or quotes,
``user:password`` of a URL, the date of a date of birth, a phone number as written.
Hard negatives are look-alikes that must not be reported (dotted versions and OIDs, ids and
timestamps with a year inside, user-only URLs, SSH remotes, retina file names, placeholder
credentials, variable references); two kinds are gold positives that another type must not
swallow (``ip_not_phone``: an IP address, not a phone; ``iban_not_card``: an IBAN whose digits
also pass as a card number). ``negative_counts()`` counts them per kind.

Every value is invented: example domains (example.org/.com/.net), documentation IP ranges
(192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) and a few private ones, card
numbers from test prefixes (4111 11, 5555 55, Maestro 6759 …) completed to pass Luhn, IBANs
with mod-97 check digits computed here, SSNs that are merely format-valid, phone numbers drawn
at random (fictional ranges where a country has them: US 555-01xx, UK 020 7946 0xxx) and kept
only when ``phonenumbers`` finds them valid, and random tokens that only look like keys.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import random
import re
import string
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn
from stdnum.es import ccc

SEED = 20250314
LANGS: tuple[str, ...] = ("en", "de", "fr", "es", "ko")
KINDS: tuple[str, ...] = (
    "log",
    "ticket",
    "email",
    "chat",
    "config",
    "csv",
    "json",
    "stacktrace",
    "form",
    "invoice",
)
VARIANTS = 4
TYPES: tuple[str, ...] = (
    "url_credentials",
    "secret",
    "email",
    "credit_card",
    "iban",
    "ssn",
    "date_of_birth",
    "phone",
    "ip_address",
)
NEGATIVE_KINDS: tuple[str, ...] = (
    "dotted_number",
    "id_or_timestamp",
    "user_only_url",
    "ssh_remote",
    "retina_file",
    "placeholder",
    "variable_reference",
    "ip_not_phone",
    "iban_not_card",
)

_SLOT = re.compile(r"⟦([A-Za-z_]+?)(\d*)⟧")


@dataclass(frozen=True)
class Val:
    """A slot's text, and what it is: a gold PII type, a hard-negative kind, both or neither."""

    text: str
    type: str | None = None
    neg: str | None = None


# ------------------------------------------------------------------------------ rendering


def render(template: str, fill: Callable[[str, str], Val | str]) -> tuple[str, list, list]:
    """The text of ``template`` with each ``⟦slot⟧`` filled, and its gold spans and negatives.

    ``fill(base, full_name)`` gives a slot's value; a slot named twice gets the same value.
    """
    parts: list[str] = []
    spans: list[dict[str, Any]] = []
    negatives: list[dict[str, Any]] = []
    values: dict[str, Val | str] = {}
    position = 0
    at = 0
    for match in _SLOT.finditer(template):
        literal = template[at : match.start()]
        parts.append(literal)
        position += len(literal)
        name = match.group(1) + match.group(2)
        if name not in values:
            values[name] = fill(match.group(1), name)
        value = values[name]
        text = value.text if isinstance(value, Val) else value
        if isinstance(value, Val) and value.type:
            spans.append({"type": value.type, "start": position, "end": position + len(text)})
        if isinstance(value, Val) and value.neg:
            negatives.append({"kind": value.neg, "start": position, "end": position + len(text)})
        parts.append(text)
        position += len(text)
        at = match.end()
    parts.append(template[at:])
    return "".join(parts), spans, negatives


# ------------------------------------------------------------------------------ people

_PEOPLE = {
    "en": [
        ("Jane", "Doe"),
        ("Michael", "Turner"),
        ("Priya", "Shah"),
        ("Tom", "Baker"),
        ("Olivia", "Hart"),
        ("Daniel", "Brooks"),
    ],
    "de": [
        ("Jürgen", "Müller"),
        ("Anna", "Schmidt"),
        ("Lukas", "Weber"),
        ("Sabine", "Krüger"),
        ("Felix", "Hoffmann"),
        ("Katrin", "Vogel"),
    ],
    "fr": [
        ("Zoë", "Lefèvre"),
        ("Camille", "Dubois"),
        ("Hugo", "Martin"),
        ("Léa", "Moreau"),
        ("Théo", "Girard"),
        ("Inès", "Roux"),
    ],
    "es": [
        ("María", "García"),
        ("Javier", "López"),
        ("Lucía", "Fernández"),
        ("Pablo", "Ruiz"),
        ("Carmen", "Díaz"),
        ("Diego", "Navarro"),
    ],
    "ko": [
        ("민지", "김"),
        ("서준", "이"),
        ("지우", "박"),
        ("하은", "최"),
        ("도윤", "정"),
        ("수아", "한"),
    ],
}
_ROMAN = {
    "민지": "minji",
    "서준": "seojun",
    "지우": "jiwoo",
    "하은": "haeun",
    "도윤": "doyun",
    "수아": "sua",
    "김": "kim",
    "이": "lee",
    "박": "park",
    "최": "choi",
    "정": "jung",
    "한": "han",
}
_ASCII = str.maketrans(
    {"ü": "ue", "ö": "oe", "ä": "ae", "ß": "ss", "é": "e", "è": "e", "ë": "e", "í": "i"}
    | {"á": "a", "ó": "o", "ú": "u", "ñ": "n", "ç": "c", "ï": "i"}
)
_DOMAINS = (
    "example.com",
    "example.org",
    "example.net",
    "mail.example.com",
    "kunde.example.org",
    "corp.example.net",
)

# ------------------------------------------------------------------------------ dates

_MONTHS = {
    "en": "January February March April May June July August September October November December",
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember",
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "es": "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre "
    "diciembre",
}


def format_date(day: date, lang: str, style: str) -> str:
    """``day`` written the way ``lang`` writes it; ``style`` picks one of its usual forms."""
    d, m, y = day.day, day.month, day.year
    yy = f"{y % 100:02d}"
    month = _MONTHS.get(lang, _MONTHS["en"]).split()[m - 1]
    forms = {
        "iso": f"{y}-{m:02d}-{d:02d}",
        "en_us": f"{m:02d}/{d:02d}/{y}",
        "en_long": f"{month} {d}, {y}",
        "en_dmy": f"{d} {month} {y}",
        "en_short": f"{m:02d}/{d:02d}/{yy}",
        "de_dot": f"{d:02d}.{m:02d}.{y}",
        "de_long": f"{d}. {month} {y}",
        "de_short": f"{d:02d}.{m:02d}.{yy}",
        "fr_slash": f"{d:02d}/{m:02d}/{y}",
        "fr_long": f"{'1er' if d == 1 else d} {month} {y}",
        "fr_short": f"{d:02d}/{m:02d}/{yy}",
        "es_slash": f"{d:02d}/{m:02d}/{y}",
        "es_long": f"{d} de {month} de {y}",
        "es_short": f"{d:02d}-{m:02d}-{yy}",
        "ko_long": f"{y}년 {m}월 {d}일",
        "ko_dot": f"{y}.{m:02d}.{d:02d}",
        "ko_short": f"{yy}.{m:02d}.{d:02d}",
    }
    return forms[style]


_DATE_STYLES = {
    "en": ("iso", "en_us", "en_long", "en_dmy"),
    "de": ("de_dot", "de_long", "iso", "de_dot"),
    "fr": ("fr_slash", "fr_long", "fr_long", "iso"),
    "es": ("es_slash", "es_long", "es_long", "iso"),
    "ko": ("ko_long", "ko_dot", "ko_long", "iso"),
}
_NUMERIC_DATE = {"en": "iso", "de": "de_dot", "fr": "fr_slash", "es": "es_slash", "ko": "ko_dot"}

# ------------------------------------------------------------------------------ numbers

# National significant numbers, "#" a random digit; each is kept only if phonenumbers says valid.
_PHONE_SHAPES = {
    "US": ("212555010#", "415555013#", "312555014#", "617555015#", "206555016#", "303555017#"),
    "GB": ("2079460###", "1614960###", "1134960###", "1174960###", "74########", "75########"),
    "DE": ("30########", "89#######", "40########", "221#######", "69########"),
    "FR": ("1########", "4########", "5########", "199######", "2########"),
    "ES": ("91#######", "93#######", "96#######", "95#######", "98#######"),
    "KR": ("2########", "2#######", "31#######", "51########", "42########"),
}
_MOBILE_SHAPES = {
    "US": ("646555018#", "917555019#", "347555012#"),
    "GB": ("74########", "75########", "78########"),
    "DE": ("151########", "160#######", "170#######", "171#######", "176########"),
    "FR": ("6########", "7########"),
    "ES": ("6########", "71#######"),
    "KR": ("10########",),
}

# (prefix, length, groups): test prefixes; the last digit is the Luhn check digit.
_CARDS = {
    "visa": ("411111", 16, (4, 4, 4, 4)),
    "visa_b": ("401288", 16, (4, 4, 4, 4)),
    "mastercard": ("555555", 16, (4, 4, 4, 4)),
    "mastercard_2": ("222100", 16, (4, 4, 4, 4)),
    "amex": ("378282", 15, (4, 6, 5)),
    "discover": ("601111", 16, (4, 4, 4, 4)),
}
_RARE_CARDS = {
    "maestro": ("6759", 16, (4, 4, 4, 4)),
    "maestro_19": ("6759", 19, (4, 4, 4, 4, 3)),
    "maestro_5018": ("501800", 16, (4, 4, 4, 4)),
    "maestro_6304": ("630490", 16, (4, 4, 4, 4)),
    "jcb": ("353011", 16, (4, 4, 4, 4)),
    "diners": ("305693", 14, (4, 6, 4)),
    "unionpay": ("625094", 16, (4, 4, 4, 4)),
    "mir": ("2200", 16, (4, 4, 4, 4)),
    "elo": ("636297", 16, (4, 4, 4, 4)),
}
_IBAN_BANKS = {"GB": ("WEST", "NWBK", "BARC", "MIDL"), "NL": ("ABNA", "INGB", "RABO", "TRIO")}
_IBAN_COUNTRIES = {
    "en": ("GB", "NL"),
    "de": ("DE", "AT"),
    "fr": ("FR",),
    "es": ("ES",),
    "ko": ("DE", "FR"),
}

# ------------------------------------------------------------------------------ negatives

_OIDS = (
    "1.2.840.113549",
    "1.2.840.113549.1.1.11",
    "1.3.6.1.4.1.311.21.7",
    "2.5.4.3",
    "1.2.840.10045.4.3.2",
    "2.16.840.1.101.3.4.2.1",
    "1.3.6.1.5.5.7.3.1",
)
_USER_URLS = (
    "https://{u}@example.org/",
    "https://{u}@git.example.com/platform/api.git",
    "ftp://anonymous@ftp.example.net/pub/",
    "http://{u}@intranet.example.com/wiki/",
    "svn+ssh://{u}@svn.example.org/repos/trunk",
)
_SSH_REMOTES = (
    "git@github.com:example-org/billing.git",
    "git@gitlab.example.com:platform/api.git",
    "git@bitbucket.org:example-team/app.git",
    "deploy@build.example.org:releases/",
    "git@git.example.net:infra/terraform.git",
)
_RETINA = (
    "logo@2x.png",
    "icon-search@3x.webp",
    "hero@2x.jpg",
    "avatar_small@1.5x.png",
    "btn-close@2x.svg",
    "sprite@3x.png",
)
_PLACEHOLDERS = (
    "<your-token-here>",
    "<password>",
    "xxxxxxxx",
    "********",
    "***",
    "YOUR_API_KEY_HERE",
    "<redacted>",
    "xxx",
)
_PLACEHOLDER_USERINFO = ("USER:PASSWORD", "<user>:<password>", "username:********", "xxx:xxx")
_VARIABLE_REFS = (
    "${DB_PASSWORD}",
    "$SMTP_PASSWORD",
    "{{ secrets.GITHUB_TOKEN }}",
    "${{ secrets.NPM_TOKEN }}",
    "%(db_password)s",
    "process.env.API_KEY",
    "settings.SECRET_KEY",
    "os.environ['DB_PASSWORD']",
    "{{ .Values.db.password }}",
)
_VARIABLE_USERINFO = ("app:${DB_PASSWORD}", "${DB_USER}:${DB_PASS}", "svc:$REDIS_PASSWORD")
_WORDS = ("Falke", "Sommer", "river", "Tiger", "maple", "Luna", "Orion", "cobalt", "Nebel")
_WORDS2 = ("soleil", "cielo", "Kiefer", "harbor", "Mistral", "bruma", "copper", "Sturm")


class Maker:
    """Invented values for one text, from a seeded generator; people fixed per text."""

    def __init__(self, rng: random.Random, lang: str, regions: tuple[str, ...]) -> None:
        """Values in ``lang``'s conventions, phones national to ``regions``."""
        self.rng = rng
        self.lang = lang
        self.regions = regions
        self.people = rng.sample(_PEOPLE[lang], len(_PEOPLE[lang]))

    # ---------------------------------------------------------------- people and plain text

    def name(self, k: int = 0) -> str:
        """Person ``k``'s full name, in the order the language writes it."""
        first, last = self.people[k % len(self.people)]
        return f"{last}{first}" if self.lang == "ko" else f"{first} {last}"

    def first(self, k: int = 0) -> str:
        """Person ``k``'s first name."""
        return self.people[k % len(self.people)][0]

    def login(self, k: int = 0) -> str:
        """Person ``k``'s ASCII login handle (``jdoe``)."""
        first, last = self.people[k % len(self.people)]
        first, last = _ROMAN.get(first, first), _ROMAN.get(last, last)
        return (first[0] + last).lower().translate(_ASCII)

    # ---------------------------------------------------------------- PII

    def email(self, k: int = 0) -> Val:
        """Person ``k``'s e-mail address at an example domain (sometimes with Unicode)."""
        first, last = self.people[k % len(self.people)]
        first, last = _ROMAN.get(first, first).lower(), _ROMAN.get(last, last).lower()
        if self.lang not in ("de", "fr") or self.rng.random() < 0.7:
            first, last = first.translate(_ASCII), last.translate(_ASCII)
        local = self.rng.choice(
            (f"{first}.{last}", f"{first[0]}.{last}", f"{first}_{last}{self.rng.randint(1, 99)}")
        )
        if self.rng.random() < 0.15:
            local += "+" + self.rng.choice(("billing", "news", "shop"))
        return Val(f"{local}@{self.rng.choice(_DOMAINS)}", "email")

    def phone(self, mobile: bool = False, intl: bool | None = None, region: str = "") -> Val:
        """A valid phone number of ``region`` (default: one of the text's), written locally."""
        region = region or self.rng.choice(self.regions)
        shapes = (_MOBILE_SHAPES if mobile else _PHONE_SHAPES)[region]
        for _ in range(1000):
            digits = "".join(
                str(self.rng.randint(0, 9)) if c == "#" else c for c in self.rng.choice(shapes)
            )
            number = phonenumbers.parse(digits, region)
            if phonenumbers.is_valid_number(number):
                break
        else:  # pragma: no cover - the shapes are chosen to be valid often
            raise RuntimeError(f"no valid {region} number")
        if intl is None:
            intl = self.rng.random() < 0.3
        fmt = phonenumbers.PhoneNumberFormat
        text = phonenumbers.format_number(number, fmt.INTERNATIONAL if intl else fmt.NATIONAL)
        if not intl:
            style = self.rng.random()
            if region == "DE" and style < 0.3:
                text = text.replace(" ", "/", 1)
            elif region == "FR" and style < 0.3:
                text = text.replace(" ", ".")
            elif region == "US" and style < 0.5:
                text = re.sub(r"\((\d{3})\) ", r"\1-", text)
            elif region == "ES" and style < 0.3:
                text = text.replace(" ", "")
        return Val(text, "phone")

    def card(self, rare: bool = False) -> Val:
        """A Luhn-valid card number of a test range, grouped with spaces, dashes or nothing."""
        table = _RARE_CARDS if rare else _CARDS
        prefix, length, groups = table[self.rng.choice(sorted(table))]
        body = prefix + "".join(
            str(self.rng.randint(0, 9)) for _ in range(length - 1 - len(prefix))
        )
        digits = body + luhn.calc_check_digit(body)
        assert luhn.is_valid(digits)
        separator = self.rng.choice((" ", " ", "-", ""))
        chunks, at = [], 0
        for size in groups:
            chunks.append(digits[at : at + size])
            at += size
        return Val(separator.join(chunks), "credit_card")

    def iban(self, spaced: bool | None = None, country: str = "") -> Val:
        """An IBAN of the language's countries with mod-97 check digits, printed or compact."""
        country = country or self.rng.choice(_IBAN_COUNTRIES[self.lang])
        value = make_iban(country, self._bban(country))
        if spaced is None:
            spaced = self.rng.random() < 0.6
        return Val(stdnum_iban.format(value) if spaced else value, "iban")

    def trap_iban(self) -> Val:
        """An IBAN whose digits also read as a Luhn-valid card number (Diners or Visa-like)."""
        if self.rng.random() < 0.5:
            # GB compact: the 14 digits after the bank code start 36 (Diners) and pass Luhn.
            body = "36" + "".join(str(self.rng.randint(0, 9)) for _ in range(11))
            bban = self.rng.choice(_IBAN_BANKS["GB"]) + body + luhn.calc_check_digit(body)
            return Val(make_iban("GB", bban), "iban", "iban_not_card")
        # DE printed: check digits 4x, and the first 18 digits after "DE" pass Luhn.
        for _ in range(100_000):
            value = make_iban("DE", self._bban("DE"))
            if value[2] == "4" and luhn.is_valid(value[2:20]):
                return Val(stdnum_iban.format(value), "iban", "iban_not_card")
        raise RuntimeError("no trap IBAN")  # pragma: no cover

    def _bban(self, country: str) -> str:
        """A random basic bank account number of ``country``, national checks computed."""

        def digits(n: int) -> str:
            """``n`` random digits."""
            return "".join(str(self.rng.randint(0, 9)) for _ in range(n))

        if country == "DE":
            return digits(18)
        if country == "AT":
            return digits(16)
        if country in ("GB", "NL"):
            return self.rng.choice(_IBAN_BANKS[country]) + digits(14 if country == "GB" else 10)
        if country == "FR":
            bank, branch, account = digits(5), digits(5), digits(11)
            key = 97 - (89 * int(bank) + 15 * int(branch) + 3 * int(account)) % 97
            return f"{bank}{branch}{account}{key:02d}"
        if country == "ES":
            bank, branch, account = digits(4), digits(4), digits(10)
            check = ccc.calc_check_digits(bank + branch + "00" + account)
            return bank + branch + check + account
        raise ValueError(country)

    def ssn(self, compact: bool = False) -> Val:
        """A format-valid US SSN (area 100-665 or 667-899, group 01-99, serial 0001-9999)."""
        area = self.rng.choice((*range(100, 666), *range(667, 900)))
        group, serial = self.rng.randint(1, 99), self.rng.randint(1, 9999)
        if compact:
            return Val(f"{area:03d}{group:02d}{serial:04d}", "ssn")
        separator = "-" if self.rng.random() < 0.75 else " "
        return Val(f"{area:03d}{separator}{group:02d}{separator}{serial:04d}", "ssn")

    def birthday(self) -> date:
        """A random date of birth between 1940 and 2006."""
        return date(self.rng.randint(1940, 2006), self.rng.randint(1, 12), self.rng.randint(1, 28))

    def dob(self, style: str = "") -> Val:
        """A date of birth written in the language's way (``style``: short, numeric, iso)."""
        if style == "short":
            style = f"{self.lang}_short"
        elif style == "numeric":
            style = _NUMERIC_DATE[self.lang]
        style = style or self.rng.choice(_DATE_STYLES[self.lang])
        return Val(format_date(self.birthday(), self.lang, style), "date_of_birth")

    def ipv4(self) -> Val:
        """A public-looking IPv4 address of a documentation range: an IP, never a phone."""
        net = self.rng.choice(("192.0.2", "198.51.100", "203.0.113"))
        return Val(f"{net}.{self.rng.randint(1, 254)}", "ip_address", "ip_not_phone")

    def private_ipv4(self) -> Val:
        """A private IPv4 address (10/8, 172.16/12, 192.168/16)."""
        r = self.rng.randint
        nets = (f"10.{r(0, 255)}", f"172.{r(16, 31)}", "192.168")
        return Val(f"{self.rng.choice(nets)}.{r(0, 255)}.{r(1, 254)}", "ip_address")

    def ipv6(self) -> Val:
        """An IPv6 address in 2001:db8::/32, compressed."""
        groups = [0x2001, 0xDB8] + [
            self.rng.choice((0, 0, self.rng.randint(1, 0xFFFF))) for _ in range(5)
        ]
        groups.append(self.rng.randint(1, 0xFFFF))
        address = ipaddress.IPv6Address(":".join(f"{g:x}" for g in groups))
        return Val(address.compressed, "ip_address")

    # ---------------------------------------------------------------- secrets

    def _alnum(self, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
        """``n`` random characters of ``alphabet``."""
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def password(self) -> Val:
        """A human-made password (word, symbol, digits, word)."""
        word, word2 = self.rng.choice(_WORDS), self.rng.choice(_WORDS2)
        symbol = self.rng.choice("!#%*+-_?$")
        return Val(f"{word}{symbol}{self.rng.randint(10, 9999)}{word2}", "secret")

    def b64(self) -> Val:
        """A base64-looking secret (random bytes, sometimes padded)."""
        raw = self.rng.randbytes(self.rng.choice((24, 32, 31, 20)))
        return Val(base64.b64encode(raw).decode(), "secret")

    def uuid_token(self) -> Val:
        """A UUID-shaped token."""
        return Val(str(uuid.UUID(int=self.rng.getrandbits(128), version=4)), "secret")

    def hex_token(self) -> Val:
        """A 40- or 64-character hex token."""
        return Val(f"{self.rng.getrandbits(160):040x}"[: self.rng.choice((40, 32))], "secret")

    def aws_key_id(self) -> Val:
        """An AWS access key id (AKIA…)."""
        return Val("AKIA" + self._alnum(16, string.ascii_uppercase + "234567"), "secret")

    def aws_secret(self) -> Val:
        """An AWS secret access key (40 characters)."""
        return Val(self._alnum(40, string.ascii_letters + string.digits + "+/"), "secret")

    def github(self) -> Val:
        """A GitHub token: mostly ghp_…, sometimes a fine-grained github_pat_…."""
        if self.rng.random() < 0.25:
            return Val(f"github_pat_11{self._alnum(20)}_{self._alnum(59)}", "secret")
        return Val("ghp_" + self._alnum(36), "secret")

    def slack(self) -> Val:
        """A Slack bot token."""
        d = string.digits
        return Val(f"xoxb-{self._alnum(12, d)}-{self._alnum(13, d)}-{self._alnum(24)}", "secret")

    def stripe(self) -> Val:
        """A Stripe secret key (live or test)."""
        return Val(f"sk_{self.rng.choice(('live', 'test'))}_{self._alnum(24)}", "secret")

    def jwt(self) -> Val:
        """A signed JWT."""

        def part(raw: bytes) -> str:
            """Unpadded base64url, as JWTs write their parts."""
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")

        claims = {"sub": str(self.rng.randint(10**6, 10**7)), "iat": 1710411753}
        header = part(b'{"alg":"HS256","typ":"JWT"}')
        return Val(
            f"{header}.{part(json.dumps(claims).encode())}.{part(self.rng.randbytes(32))}", "secret"
        )

    def bearer(self) -> Val:
        """A bearer token: a JWT or an opaque string."""
        return self.jwt() if self.rng.random() < 0.5 else Val(self._alnum(32), "secret")

    def private_key(self) -> Val:
        """A private key block (random base64 lines between the armour)."""
        kind = self.rng.choice(("RSA ", "OPENSSH ", "EC ", ""))
        lines = [base64.b64encode(self.rng.randbytes(48)).decode() for _ in range(3)]
        body = "\n".join(lines)
        return Val(
            f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----", "secret"
        )

    def userinfo(self) -> Val:
        """``user:password`` for a URL (sometimes with an empty user, as Redis URLs have)."""
        user = self.rng.choice(("app", "svc_billing", "admin", "deploy", "report", "shop"))
        secret = self.password().text.replace("?", "").replace("#", "")
        return Val(f"{user}:{secret}", "url_credentials")

    def password_only_userinfo(self) -> Val:
        """``:password`` for a URL with an empty user (as Redis URLs have)."""
        return Val(":" + self.password().text.replace("?", "").replace("#", ""), "url_credentials")

    # ---------------------------------------------------------------- hard negatives

    def dotted(self, form: str = "") -> Val:
        """A dotted version, section or OID number that is not an IP address."""
        r = self.rng.randint
        form = form or self.rng.choice(("version", "bare", "section", "oid", "build"))
        text = {
            "version": f"v{r(1, 9)}.{r(0, 30)}.{r(0, 20)}.{r(0, 9)}",
            "bare": f"{r(1, 9)}.{r(0, 30)}.{r(0, 20)}.{r(0, 9)}",
            "section": f"§{r(1, 9)}.{r(1, 9)}.{r(1, 9)}.{r(1, 9)}",
            "oid": self.rng.choice(_OIDS),
            "build": f"10.0.{r(17000, 22999)}.{r(100, 4999)}",
        }[form]
        return Val(text, None, "dotted_number")

    def id_or_timestamp(self, form: str = "") -> Val:
        """An invoice, order or mandate id with a year inside, or a timestamp."""
        r = self.rng.randint
        y, mo, d, h, mi, s = r(2019, 2025), r(1, 12), r(1, 28), r(0, 23), r(0, 59), r(0, 59)
        stamp = f"{y}{mo:02d}{d:02d}"
        form = form or self.rng.choice(("invoice", "order", "mandate", "iso", "compact", "ticket"))
        text = {
            "invoice": self.rng.choice(("INV", "RE", "FAC", "FA")) + f"-{y}-{r(1, 999999):06d}",
            "order": self.rng.choice(("ORD", "PO", "BE")) + f"-{y}-{r(1, 99999):05d}",
            "mandate": f"MND-{y}-{r(1, 999999):06d}",
            "iso": f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}Z",
            "log": f"{y}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}",
            "compact": f"{stamp}{h:02d}{mi:02d}{s:02d}",
            "ticket": f"{stamp}{r(1, 99999):05d}",
            "epoch": str(r(1_550_000_000, 1_740_000_000)),
        }[form]
        return Val(text, None, "id_or_timestamp")

    def user_url(self, k: int = 0) -> Val:
        """A URL with a user but no password."""
        return Val(self.rng.choice(_USER_URLS).format(u=self.login(k)), None, "user_only_url")

    def ssh_remote(self) -> Val:
        """An scp-style SSH remote (``git@host:org/repo.git``)."""
        return Val(self.rng.choice(_SSH_REMOTES), None, "ssh_remote")

    def retina(self) -> Val:
        """A retina image file name (``logo@2x.png``)."""
        return Val(self.rng.choice(_RETINA), None, "retina_file")

    def placeholder(self) -> Val:
        """A placeholder where a secret would go (``<your-token-here>``, ``***``)."""
        return Val(self.rng.choice(_PLACEHOLDERS), None, "placeholder")

    def placeholder_userinfo(self) -> Val:
        """Placeholder URL credentials (``USER:PASSWORD``)."""
        return Val(self.rng.choice(_PLACEHOLDER_USERINFO), None, "placeholder")

    def variable(self) -> Val:
        """A reference to a secret kept elsewhere (``${DB_PASSWORD}``, ``{{ secrets.X }}``)."""
        return Val(self.rng.choice(_VARIABLE_REFS), None, "variable_reference")

    def variable_userinfo(self) -> Val:
        """URL credentials made of variable references (``app:${DB_PASSWORD}``)."""
        return Val(self.rng.choice(_VARIABLE_USERINFO), None, "variable_reference")


def make_iban(country: str, bban: str) -> str:
    """The IBAN of ``bban`` in ``country``: check digits by the mod-97 rule, then verified."""
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    value = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    if not stdnum_iban.is_valid(value):  # pragma: no cover - a wrong national format
        raise ValueError(f"invalid IBAN {value}")
    return value


# ------------------------------------------------------------------------------ slot filling


def _slot_makers(m: Maker) -> dict[str, Callable[[int], Val | str]]:
    """What each slot base name stands for; the digits after it number people and values."""
    return {
        "name": m.name,
        "first": m.first,
        "login": m.login,
        "email": m.email,
        "phone": lambda k: m.phone(),
        "phoneintl": lambda k: m.phone(intl=True),
        "mobile": lambda k: m.phone(mobile=True),
        "phonefr": lambda k: m.phone(intl=True, region="FR"),
        "phoneus": lambda k: m.phone(region="US"),
        "card": lambda k: m.card(),
        "rarecard": lambda k: m.card(rare=True),
        "iban": lambda k: m.iban(),
        "ibancompact": lambda k: m.iban(spaced=False),
        "trapiban": lambda k: m.trap_iban(),
        "ssn": lambda k: m.ssn(),
        "ssnnine": lambda k: m.ssn(compact=True),
        "dob": lambda k: m.dob(),
        "dobshort": lambda k: m.dob("short"),
        "dobnum": lambda k: m.dob("numeric"),
        "dobiso": lambda k: m.dob("iso"),
        "ip": lambda k: m.ipv4(),
        "pip": lambda k: m.private_ipv4(),
        "ipsix": lambda k: m.ipv6(),
        "pw": lambda k: m.password(),
        "b": lambda k: m.b64(),
        "uuid": lambda k: m.uuid_token(),
        "hex": lambda k: m.hex_token(),
        "akid": lambda k: m.aws_key_id(),
        "awssecret": lambda k: m.aws_secret(),
        "ghp": lambda k: m.github(),
        "slack": lambda k: m.slack(),
        "stripe": lambda k: m.stripe(),
        "jwt": lambda k: m.jwt(),
        "bearer": lambda k: m.bearer(),
        "pkey": lambda k: m.private_key(),
        "cred": lambda k: m.userinfo(),
        "rediscred": lambda k: m.password_only_userinfo(),
        "ver": lambda k: m.dotted("version"),
        "bare": lambda k: m.dotted("bare"),
        "sec": lambda k: m.dotted("section"),
        "oid": lambda k: m.dotted("oid"),
        "build": lambda k: m.dotted("build"),
        "dotted": lambda k: m.dotted(),
        "inv": lambda k: m.id_or_timestamp("invoice"),
        "ord": lambda k: m.id_or_timestamp("order"),
        "mandate": lambda k: m.id_or_timestamp("mandate"),
        "ts": lambda k: m.id_or_timestamp("iso"),
        "logts": lambda k: m.id_or_timestamp("log"),
        "stamp": lambda k: m.id_or_timestamp("compact"),
        "tid": lambda k: m.id_or_timestamp("ticket"),
        "epoch": lambda k: m.id_or_timestamp("epoch"),
        "uurl": m.user_url,
        "ssh": lambda k: m.ssh_remote(),
        "retina": lambda k: m.retina(),
        "ph": lambda k: m.placeholder(),
        "phcred": lambda k: m.placeholder_userinfo(),
        "var": lambda k: m.variable(),
        "varcred": lambda k: m.variable_userinfo(),
        "n": lambda k: str(m.rng.randint(100, 9999)),
        "amount": lambda k: f"{m.rng.randint(10, 2999)}.{m.rng.randint(0, 99):02d}",
    }


def _filler(m: Maker, lang: str) -> Callable[[str, str], Val | str]:
    """``fill(base, name)`` for render(): lexicon words (``L_…``) and generated values."""
    makers = _slot_makers(m)
    words = LEXICON[lang]

    def fill(base: str, name: str) -> Val | str:
        """The value of slot ``name`` (``base`` without its number)."""
        if base.startswith("L_"):
            return words[base[2:]]
        digits = name[len(base) :]
        return makers[base](int(digits) if digits else 0)

    return fill


# ------------------------------------------------------------------------------ lexicon

# Words of the shared templates (logs, configs, CSV, JSON, stack traces, forms, invoices).
LEXICON: dict[str, dict[str, str]] = {
    "en": {
        "ok": "login succeeded",
        "fail": "login failed",
        "phone_changed": "phone number changed to",
        "conn": "cannot connect to",
        "sms": "SMS code sent to",
        "deploy": "deployed from",
        "charge": "charge captured",
        "comment": "production settings, do not commit",
        "pw_key": "password",
        "h_name": "name",
        "h_email": "email",
        "h_phone": "phone",
        "h_dob": "date_of_birth",
        "h_city": "city",
        "city": "Springfield",
        "note": "customer asked for a callback",
        "err": "payment failed for customer",
        "f_title": "Account application",
        "f_name": "Full name",
        "f_dob": "Date of birth",
        "f_email": "E-mail",
        "f_phone": "Phone",
        "f_iban": "Bank account (IBAN)",
        "f_ref": "Reference",
        "f_sent": "Submitted",
        "f_from": "from",
        "f_consent": "I agree to the terms (v",
        "i_title": "INVOICE",
        "i_date": "Date",
        "i_customer": "Bill to",
        "i_item": "Consulting, March",
        "i_total": "Total due",
        "i_pay": "Please pay by bank transfer to",
        "i_ref": "quoting",
        "i_contact": "Questions? Call",
        "i_thanks": "Thank you for your business.",
        "i_card": "Paid by card",
    },
    "de": {
        "ok": "Anmeldung erfolgreich",
        "fail": "Anmeldung fehlgeschlagen",
        "phone_changed": "Telefonnummer geändert auf",
        "conn": "keine Verbindung zu",
        "sms": "SMS-Code gesendet an",
        "deploy": "ausgerollt aus",
        "charge": "Zahlung verbucht",
        "comment": "Produktivkonfiguration, nicht einchecken",
        "pw_key": "passwort",
        "h_name": "name",
        "h_email": "e_mail",
        "h_phone": "telefon",
        "h_dob": "geburtsdatum",
        "h_city": "ort",
        "city": "Musterstadt",
        "note": "Kundin bittet um Rückruf",
        "err": "Zahlung fehlgeschlagen für Kunde",
        "f_title": "Kontoeröffnung",
        "f_name": "Vor- und Nachname",
        "f_dob": "Geburtsdatum",
        "f_email": "E-Mail",
        "f_phone": "Telefon",
        "f_iban": "Bankverbindung (IBAN)",
        "f_ref": "Mandatsreferenz",
        "f_sent": "Abgeschickt",
        "f_from": "von",
        "f_consent": "Ich stimme den AGB zu (Fassung",
        "i_title": "RECHNUNG",
        "i_date": "Rechnungsdatum",
        "i_customer": "Rechnungsempfänger",
        "i_item": "Beratungsleistung März",
        "i_total": "Gesamtbetrag",
        "i_pay": "Bitte überweisen Sie den Betrag auf",
        "i_ref": "Verwendungszweck",
        "i_contact": "Rückfragen unter",
        "i_thanks": "Vielen Dank für Ihren Auftrag.",
        "i_card": "Bezahlt mit Karte",
    },
    "fr": {
        "ok": "connexion réussie",
        "fail": "échec de connexion",
        "phone_changed": "numéro de téléphone modifié en",
        "conn": "connexion impossible à",
        "sms": "code SMS envoyé au",
        "deploy": "déployé depuis",
        "charge": "paiement encaissé",
        "comment": "configuration de production, ne pas committer",
        "pw_key": "mot_de_passe",
        "h_name": "nom",
        "h_email": "courriel",
        "h_phone": "telephone",
        "h_dob": "date_naissance",
        "h_city": "ville",
        "city": "Villeneuve",
        "note": "la cliente demande à être rappelée",
        "err": "échec du paiement pour le client",
        "f_title": "Demande d'ouverture de compte",
        "f_name": "Nom et prénom",
        "f_dob": "Date de naissance",
        "f_email": "Courriel",
        "f_phone": "Téléphone",
        "f_iban": "Coordonnées bancaires (IBAN)",
        "f_ref": "Référence du mandat",
        "f_sent": "Envoyé le",
        "f_from": "depuis",
        "f_consent": "J'accepte les CGU (version",
        "i_title": "FACTURE",
        "i_date": "Date",
        "i_customer": "Client",
        "i_item": "Prestation de conseil, mars",
        "i_total": "Total TTC",
        "i_pay": "Règlement par virement sur",
        "i_ref": "en indiquant",
        "i_contact": "Une question ? Appelez le",
        "i_thanks": "Merci de votre confiance.",
        "i_card": "Payé par carte",
    },
    "es": {
        "ok": "inicio de sesión correcto",
        "fail": "inicio de sesión fallido",
        "phone_changed": "teléfono cambiado a",
        "conn": "no se puede conectar a",
        "sms": "código SMS enviado al",
        "deploy": "desplegado desde",
        "charge": "cobro realizado",
        "comment": "configuración de producción, no subir al repositorio",
        "pw_key": "contrasena",
        "h_name": "nombre",
        "h_email": "correo",
        "h_phone": "telefono",
        "h_dob": "fecha_nacimiento",
        "h_city": "ciudad",
        "city": "Villaverde",
        "note": "el cliente pide que le llamen",
        "err": "fallo en el pago del cliente",
        "f_title": "Solicitud de alta",
        "f_name": "Nombre y apellidos",
        "f_dob": "Fecha de nacimiento",
        "f_email": "Correo electrónico",
        "f_phone": "Teléfono",
        "f_iban": "Cuenta bancaria (IBAN)",
        "f_ref": "Referencia de la orden",
        "f_sent": "Enviado",
        "f_from": "desde",
        "f_consent": "Acepto las condiciones (versión",
        "i_title": "FACTURA",
        "i_date": "Fecha",
        "i_customer": "Cliente",
        "i_item": "Servicios de consultoría, marzo",
        "i_total": "Total a pagar",
        "i_pay": "Por favor, transfiera el importe a",
        "i_ref": "indicando",
        "i_contact": "¿Dudas? Llame al",
        "i_thanks": "Gracias por su confianza.",
        "i_card": "Pagado con tarjeta",
    },
    "ko": {
        "ok": "로그인 성공",
        "fail": "로그인 실패",
        "phone_changed": "전화번호 변경:",
        "conn": "연결할 수 없음:",
        "sms": "인증 문자 발송:",
        "deploy": "배포 원본:",
        "charge": "결제 완료",
        "comment": "운영 환경 설정, 커밋 금지",
        "pw_key": "비밀번호",
        "h_name": "이름",
        "h_email": "이메일",
        "h_phone": "전화번호",
        "h_dob": "생년월일",
        "h_city": "도시",
        "city": "서울",
        "note": "고객이 회신 전화를 요청함",
        "err": "고객 결제 실패",
        "f_title": "회원 가입 신청서",
        "f_name": "성명",
        "f_dob": "생년월일",
        "f_email": "이메일",
        "f_phone": "연락처",
        "f_iban": "해외 송금 계좌 (IBAN)",
        "f_ref": "참조 번호",
        "f_sent": "제출 시각",
        "f_from": "접속 IP",
        "f_consent": "이용약관에 동의합니다 (버전",
        "i_title": "청구서",
        "i_date": "발행일",
        "i_customer": "고객",
        "i_item": "3월 컨설팅 비용",
        "i_total": "합계",
        "i_pay": "아래 계좌로 송금해 주십시오:",
        "i_ref": "송금 메모",
        "i_contact": "문의 전화",
        "i_thanks": "감사합니다.",
        "i_card": "카드 결제",
    },
}

# ------------------------------------------------------------------------------ templates

_LOGS = [
    """⟦ts1⟧ INFO  auth.login ⟦L_ok⟧ user=⟦email⟧ ip=⟦ip1⟧ client=⟦ver⟧
⟦ts2⟧ WARN  auth.login ⟦L_fail⟧ user=⟦email1⟧ ip=⟦ipsix⟧ attempts=3
⟦ts3⟧ DEBUG http.client GET https://api.example.com/v2/orders/⟦ord⟧ -> 200 (⟦n⟧ ms)
⟦ts4⟧ INFO  profile.update ⟦L_phone_changed⟧ ⟦phone⟧ (user ⟦login⟧)
""",
    """⟦ip1⟧ - - [14/Mar/2025:10:22:33 +0000] "GET /static/img/⟦retina⟧ HTTP/1.1" 200 5120
⟦ip2⟧ - ⟦login⟧ [14/Mar/2025:10:22:35 +0000] "POST /api/login HTTP/1.1" 401 77
⟦pip⟧ - - [14/Mar/2025:10:22:41 +0000] "GET /invoices/⟦inv⟧.pdf HTTP/2.0" 200 88211
⟦ipsix⟧ - - [14/Mar/2025:10:22:44 +0000] "GET /api/users?email=⟦email⟧ HTTP/2.0" 200 412
""",
    """⟦logts1⟧ ERROR db.pool ⟦L_conn⟧ postgresql://⟦cred⟧@db.example.org:5432/app
⟦logts2⟧ DEBUG http.out Authorization: Bearer ⟦bearer⟧
⟦logts3⟧ INFO  deploy ⟦L_deploy⟧ ⟦ssh⟧ @ ⟦ver⟧
⟦logts4⟧ INFO  billing ⟦L_charge⟧ card=⟦card⟧ mandate=⟦mandate⟧ at=⟦stamp⟧
⟦logts5⟧ WARN  config fallback dsn=mysql://⟦phcred⟧@db.example.org/shop
""",
    """Mar 14 10:22:33 web-01 sshd[2211]: Accepted publickey for deploy from ⟦ip1⟧ port 52144 ssh2
Mar 14 10:22:41 web-01 sshd[2215]: Failed password for invalid user admin from ⟦ip2⟧ port 40022
Mar 14 10:23:02 web-01 app[880]: ⟦L_sms⟧ ⟦mobile⟧ (ref ⟦tid⟧, t=⟦epoch⟧)
Mar 14 10:23:05 web-01 app[880]: tls policy ⟦oid⟧, agent ⟦bare⟧, peer ⟦ip3⟧
Mar 14 10:23:09 web-01 app[880]: token=⟦ghp⟧ user=⟦email⟧
""",
]

_CONFIGS = [
    """# ⟦L_comment⟧
APP_ENV=production
DATABASE_URL=postgres://⟦cred⟧@db.example.org:5432/app
REDIS_URL=redis://⟦varcred⟧@cache.example.org:6379/0
SECRET_KEY=⟦b⟧
API_TOKEN=⟦uuid⟧
AWS_ACCESS_KEY_ID=⟦akid⟧
AWS_SECRET_ACCESS_KEY=⟦awssecret⟧
SMTP_PASSWORD=⟦var⟧
SUPPORT_PHONE="⟦phoneintl⟧"
ADMIN_EMAIL=⟦email⟧
DEPLOY_KEY="⟦pkey⟧"
""",
    """# ⟦L_comment⟧
database:
  host: ⟦ip⟧
  user: app
  password: "⟦pw⟧"
  replica_password: "⟦ph⟧"
cache:
  url: redis://⟦rediscred⟧@cache.example.org:6379/0
smtp:
  username: ⟦email⟧
  password: ⟦var⟧
github:
  token: ⟦ghp⟧
  remote: ⟦ssh⟧
tls:
  signature_algorithm: ⟦oid⟧
⟦L_pw_key⟧: ⟦pw1⟧
""",
    """; ⟦L_comment⟧
[server]
listen = ⟦ipsix⟧
version = ⟦ver⟧

[database]
dsn = mysql://⟦cred⟧@db.example.com/shop
password = ⟦pw⟧
⟦L_pw_key⟧ = ⟦pw1⟧

[mail]
from = ⟦email⟧
api_key = ⟦ph⟧

[sso]
client_secret = ⟦hex⟧
""",
    """{
  "_comment": "⟦L_comment⟧",
  "service": "billing",
  "listen": "⟦ip⟧:8443",
  "db": {
    "url": "mongodb://⟦cred⟧@mongo.example.net:27017/billing",
    "password": "⟦var⟧"
  },
  "slack": {"token": "⟦slack⟧"},
  "stripe": {"secret_key": "⟦stripe⟧"},
  "jwt_secret": "⟦b⟧",
  "support": {"phone": "⟦phone⟧", "email": "⟦email⟧"},
  "assets": {"logo": "/img/⟦retina⟧", "build": "⟦build⟧"}
}
""",
]

_CSVS = [
    """id,⟦L_h_name⟧,⟦L_h_email⟧,⟦L_h_phone⟧,⟦L_h_dob⟧,iban,created_at
1,⟦name⟧,⟦email⟧,⟦phone1⟧,⟦dobnum1⟧,⟦iban1⟧,⟦ts1⟧
2,⟦name2⟧,⟦email2⟧,⟦phone2⟧,⟦dobnum2⟧,⟦trapiban⟧,⟦ts2⟧
3,⟦name3⟧,⟦email3⟧,⟦mobile3⟧,⟦dobiso3⟧,⟦iban3⟧,⟦ts3⟧
""",
    """order_id,⟦L_h_name⟧,card_number,amount,currency,client_ip,⟦L_h_city⟧
⟦inv1⟧,⟦name1⟧,⟦card1⟧,⟦amount1⟧,EUR,⟦ip1⟧,⟦L_city⟧
⟦inv2⟧,⟦name2⟧,⟦rarecard2⟧,⟦amount2⟧,EUR,⟦ip2⟧,⟦L_city⟧
⟦inv3⟧,⟦name3⟧,⟦rarecard3⟧,⟦amount3⟧,EUR,⟦ipsix3⟧,⟦L_city⟧
⟦inv4⟧,⟦name4⟧,⟦card4⟧,⟦amount4⟧,EUR,⟦pip4⟧,⟦L_city⟧
""",
    """employee_id;⟦L_h_name⟧;ssn;⟦L_h_phone⟧;birth_date;badge_photo;agent
E-⟦n1⟧;⟦name1⟧;⟦ssn1⟧;⟦phoneus1⟧;⟦dobiso1⟧;⟦retina1⟧;⟦bare1⟧
E-⟦n2⟧;⟦name2⟧;⟦ssnnine2⟧;⟦phoneus2⟧;⟦dobiso2⟧;⟦retina2⟧;⟦bare2⟧
E-⟦n3⟧;⟦name3⟧;⟦ssn3⟧;⟦phoneus3⟧;⟦dobnum3⟧;⟦retina3⟧;⟦ver3⟧
""",
]

_JSONS = [
    """{
  "id": "usr_⟦n⟧",
  "name": "⟦name⟧",
  "email": "⟦email⟧",
  "phone": "⟦phone⟧",
  "birthDate": "⟦dobiso⟧",
  "dob": "⟦dobnum⟧",
  "lastLoginIp": "⟦ip⟧",
  "avatar": "https://cdn.example.com/a/⟦retina⟧",
  "profile": "⟦uurl⟧",
  "note": "⟦L_note⟧"
}
""",
    """{"event": "payment.succeeded", "created": "⟦ts⟧", "invoice": "⟦inv⟧",
 "payer": {"name": "⟦name⟧", "iban": "⟦iban⟧", "mandate_id": "⟦mandate⟧"},
 "card": {"number": "⟦card⟧", "brand": "auto"},
 "metadata": {"client_ip": "⟦ipsix⟧", "sdk": "⟦ver⟧", "oid": "⟦oid⟧"},
 "api_key": "⟦stripe⟧"}
""",
    """{"applicant": {"name": "⟦name⟧", "ssn": "⟦ssn⟧", "date_of_birth": "⟦dobiso⟧",
  "phone": "⟦phoneintl⟧", "email": "⟦email⟧"},
 "source": {"repo": "⟦ssh⟧", "commit_time": "⟦stamp⟧", "ip": "⟦ip⟧"},
 "auth": {"access_token": "⟦jwt⟧", "refresh_token": "⟦ph⟧"}}
""",
]

_STACKS = [
    """Traceback (most recent call last):
  File "/srv/app/billing/charge.py", line 88, in charge
    resp = client.post(url, auth=("api", "⟦pw⟧"))
  File "/srv/app/.venv/lib/python3.11/site-packages/requests/api.py", line 115, in post
requests.exceptions.ConnectionError: HTTPSConnectionPool(host='⟦ip⟧', port=443): Max retries
During handling: ⟦L_err⟧ ⟦email⟧ card=⟦card⟧ order=⟦ord⟧
""",
    """⟦logts⟧ ERROR [main] c.e.shop.PaymentService - ⟦L_err⟧ ⟦name⟧
org.postgresql.util.PSQLException: FATAL: password authentication failed
  (url jdbc:postgresql://⟦ip⟧:5432/shop, user "shop")
\tat org.postgresql.core.v3.ConnectionFactoryImpl.doAuthentication(ConnectionFactoryImpl.java:693)
\tat com.example.shop.PaymentService.charge(PaymentService.java:142)
Caused by: java.lang.IllegalStateException: IBAN rejected: ⟦iban⟧ (mandate ⟦mandate⟧)
\t... 12 more
spring.datasource.password=⟦pw⟧
""",
    """Error: Request failed with status code 401
    at createError (/app/node_modules/axios/lib/core/createError.js:16:15)
    at settle (/app/node_modules/axios/lib/core/settle.js:17:12)
  config: { url: 'https://⟦cred⟧@api.example.com/v1/sms',
    headers: { Authorization: 'Bearer ⟦bearer⟧', 'X-Api-Key': ⟦var⟧ },
    data: '{"to":"⟦phoneintl⟧"}' }
  node: v20.11.1, sdk ⟦ver⟧, asset ⟦retina⟧
""",
    """panic: runtime error: invalid memory address or nil pointer dereference
goroutine 17 [running]:
main.(*Server).handle(0xc000112000, {0x7f2c3a, 0x1f})
\t/src/server.go:211 +0x1f4
request from [⟦ipsix⟧]:51544 user ⟦email⟧ token=⟦ghp⟧ at ⟦ts⟧
remote ⟦ssh⟧ (⟦sec⟧)
""",
]

_FORMS = [
    """⟦L_f_title⟧
⟦L_f_name⟧: ⟦name⟧
⟦L_f_dob⟧: ⟦dob⟧
⟦L_f_email⟧: ⟦email⟧
⟦L_f_phone⟧: ⟦phone⟧
⟦L_f_iban⟧: ⟦iban⟧
⟦L_f_ref⟧: ⟦mandate⟧
⟦L_f_sent⟧: ⟦logts⟧ ⟦L_f_from⟧ ⟦ip⟧
[x] ⟦L_f_consent⟧ ⟦ver⟧)
""",
    """POST /signup HTTP/1.1
Host: app.example.com
Content-Type: application/x-www-form-urlencoded

# body as logged by the form handler, decoded
first_name=⟦first⟧&email=⟦email⟧&phone=⟦mobile⟧&dob=⟦dobiso⟧&password=⟦pw⟧&avatar=⟦retina⟧

-- ⟦L_f_sent⟧ ⟦ts⟧ ⟦L_f_from⟧ ⟦ipsix⟧ (⟦L_f_dob⟧: ⟦dobshort⟧)
""",
]

_INVOICES = [
    """⟦L_i_title⟧ ⟦inv⟧
⟦L_i_date⟧: ⟦logts⟧
⟦L_i_customer⟧: ⟦name⟧, ⟦email⟧
1 x ⟦L_i_item⟧ .......... ⟦amount⟧
⟦L_i_total⟧: ⟦amount⟧ EUR
⟦L_i_pay⟧ IBAN ⟦iban⟧ (⟦L_i_ref⟧ ⟦inv⟧ / ⟦mandate⟧)
⟦L_i_contact⟧ ⟦phone⟧
⟦L_i_thanks⟧
""",
    """⟦L_i_title⟧ ⟦inv⟧ · ⟦ord⟧
⟦L_i_customer⟧: ⟦name⟧ <⟦email⟧>
⟦L_i_item⟧: ⟦amount⟧ EUR
⟦L_i_card⟧: ⟦rarecard⟧
⟦L_i_pay⟧ ⟦trapiban⟧
⟦L_i_contact⟧ ⟦mobile⟧, ⟦phonefr⟧
""",
]

# Prose, written in each language.
_TICKETS = {
    "en": [
        """Ticket #⟦tid⟧ - Cannot update payment details
Reporter: ⟦name⟧ <⟦email⟧>
Priority: high | Component: billing ⟦ver⟧

Customer called from ⟦phone⟧ and says her card is declined. Full number as read out on
the phone: ⟦card⟧. She confirmed her DOB as ⟦dob⟧ and her SSN ⟦ssn⟧. Gateway log shows
requests from ⟦ip⟧.
""",
        """[SUP-⟦n⟧] Password reset loop
Steps: open the login page, click "forgot password"; the ⟦retina⟧ never loads.
The user pasted their config:
    password: ⟦pw⟧
    token: ⟦ph⟧
Repo is ⟦ssh⟧, wiki at ⟦uurl⟧. SSN on file: ⟦ssnnine⟧ (born ⟦dobshort⟧).
Contact: ⟦email⟧, ⟦phone⟧.
""",
    ],
    "de": [
        """Ticket #⟦tid⟧: Lastschrift fehlgeschlagen
Melder: ⟦name⟧ (⟦email⟧), Tel. ⟦phone⟧
Die Kundin, geb. ⟦dob⟧, meldet eine Rücklastschrift zur Rechnung ⟦inv⟧
(Mandatsreferenz ⟦mandate⟧). IBAN laut Kundin: ⟦iban⟧. Bitte bis Freitag prüfen,
siehe Handbuch ⟦sec⟧.
""",
        """[IT-⟦n⟧] VPN-Zugang funktioniert nicht
Herr ⟦name⟧ erreicht den Server ⟦ip⟧ nicht mehr. Handy: ⟦mobile⟧.
Er hat mir sein Passwort per Mail geschickt (!): ⟦pw⟧ - bitte sofort zurücksetzen.
Client-Version ⟦ver⟧, Zertifikat-OID ⟦oid⟧, geboren am ⟦dob⟧ (für die Identprüfung).
""",
    ],
    "fr": [
        """Ticket n° ⟦tid⟧ : prélèvement rejeté
Demandeur : ⟦name⟧ (⟦email⟧), tél. ⟦phone⟧
La cliente, née le ⟦dob⟧, signale un rejet de prélèvement sur la facture ⟦inv⟧
(mandat ⟦mandate⟧). IBAN communiqué : ⟦iban⟧. Voir la procédure ⟦sec⟧.
""",
        """[SUPPORT-⟦n⟧] Accès VPN impossible
M. ⟦name⟧ n'arrive plus à joindre ⟦ip⟧. Portable : ⟦mobile⟧.
Il m'a envoyé son mot de passe en clair : ⟦pw⟧ — à réinitialiser d'urgence.
Version du client ⟦ver⟧, dépôt ⟦ssh⟧. Date de naissance : ⟦dob⟧.
""",
    ],
    "es": [
        """Ticket n.º ⟦tid⟧: domiciliación devuelta
Solicitante: ⟦name⟧ (⟦email⟧), tel. ⟦phone⟧
La clienta, nacida el ⟦dob⟧, informa de un recibo devuelto de la factura ⟦inv⟧
(orden ⟦mandate⟧). IBAN indicado: ⟦iban⟧. Ver el procedimiento ⟦sec⟧.
""",
        """[SOPORTE-⟦n⟧] No funciona la VPN
El Sr. ⟦name⟧ no llega al servidor ⟦ip⟧. Móvil: ⟦mobile⟧.
Me ha mandado su contraseña por correo: ⟦pw⟧ — hay que cambiarla ya.
Versión del cliente ⟦ver⟧, imagen ⟦retina⟧. Nacido el ⟦dob⟧.
""",
    ],
    "ko": [
        """티켓 #⟦tid⟧: 자동이체 실패
요청자: ⟦name⟧ (⟦email⟧), 전화 ⟦phone⟧
고객(생년월일: ⟦dob⟧)이 청구서 ⟦inv⟧의 출금이 반송되었다고 합니다.
해외 계좌 IBAN: ⟦iban⟧. 처리 절차 ⟦sec⟧ 참조.
""",
        """[지원-⟦n⟧] VPN 접속 불가
⟦name⟧ 님이 서버 ⟦ip⟧에 접속하지 못합니다. 휴대폰: ⟦mobile⟧
메일로 비밀번호를 보내 주셨습니다: ⟦pw⟧ — 즉시 재설정 필요.
클라이언트 버전 ⟦ver⟧, 저장소 ⟦ssh⟧. 생년월일 ⟦dob⟧.
""",
    ],
}

_EMAILS = {
    "en": [
        """From: ⟦name⟧ <⟦email⟧>
To: Accounts <⟦email1⟧>
Subject: Refund for order ⟦ord⟧

Hi team,

I was charged twice for ⟦inv⟧ on my card ⟦card⟧. Please refund to my account
⟦iban⟧ instead. You can reach me on ⟦phone⟧ (mobile ⟦mobile⟧).

Best,
⟦first⟧
""",
        """From: ⟦name1⟧ <⟦email1⟧>
To: ⟦email⟧
Subject: New hire paperwork

Hi ⟦first⟧, for payroll I need your SSN (⟦ssn⟧) and date of birth. You wrote
"born on ⟦dob⟧", is that right? The VPN login is ⟦login⟧ / password: ⟦pw⟧ and the
portal is at ⟦uurl⟧. Don't use the old key ⟦akid⟧ any more.
""",
    ],
    "de": [
        """Von: ⟦name⟧ <⟦email⟧>
An: Buchhaltung <⟦email1⟧>
Betreff: Erstattung zu ⟦inv⟧

Hallo zusammen,

die Rechnung ⟦inv⟧ wurde doppelt von meiner Karte ⟦card⟧ abgebucht. Bitte
erstatten Sie den Betrag auf mein Konto ⟦iban⟧. Erreichbar bin ich unter ⟦phone⟧.

Viele Grüße
⟦name⟧
geb. ⟦dob⟧ (falls Sie das zur Zuordnung brauchen)
""",
        """Von: ⟦name1⟧ <⟦email1⟧>
An: ⟦email⟧
Betreff: Zugangsdaten Testsystem

Hallo ⟦first⟧,
hier die Zugangsdaten: Benutzer ⟦login⟧, Passwort: ⟦pw⟧
Datenbank: postgresql://⟦cred⟧@db.example.org/test
Das Logo (⟦retina⟧) liegt im Repo ⟦ssh⟧. Ruf mich an: ⟦mobile⟧
""",
    ],
    "fr": [
        """De : ⟦name⟧ <⟦email⟧>
À : Comptabilité <⟦email1⟧>
Objet : Remboursement facture ⟦inv⟧

Bonjour,

La facture ⟦inv⟧ a été débitée deux fois sur ma carte ⟦card⟧. Merci de me
rembourser sur mon compte ⟦iban⟧. Vous pouvez me joindre au ⟦phone⟧.

Cordialement,
⟦name⟧, née le ⟦dob⟧
""",
        """De : ⟦name1⟧ <⟦email1⟧>
À : ⟦email⟧
Objet : Accès à l'environnement de test

Bonjour ⟦first⟧,
identifiant ⟦login⟧, mot de passe : ⟦pw⟧
Base : mysql://⟦cred⟧@db.example.org/recette
Le dépôt est ⟦ssh⟧ (logo ⟦retina⟧). Mon portable : ⟦mobile⟧
""",
    ],
    "es": [
        """De: ⟦name⟧ <⟦email⟧>
Para: Contabilidad <⟦email1⟧>
Asunto: Devolución de la factura ⟦inv⟧

Hola:

Me han cobrado dos veces la factura ⟦inv⟧ en la tarjeta ⟦card⟧. Por favor,
devuélvanme el importe en la cuenta ⟦iban⟧. Pueden llamarme al ⟦phone⟧.

Un saludo,
⟦name⟧ (nacida el ⟦dob⟧)
""",
        """De: ⟦name1⟧ <⟦email1⟧>
Para: ⟦email⟧
Asunto: Alta en nómina (EE. UU.)

Hola ⟦first⟧, para la nómina de la filial necesito tu número de Seguro Social
(SSN ⟦ssn⟧) y tu fecha de nacimiento: ⟦dob⟧. Usuario ⟦login⟧, contraseña: ⟦pw⟧.
Repositorio ⟦ssh⟧. Móvil: ⟦mobile⟧
""",
    ],
    "ko": [
        """보낸 사람: ⟦name⟧ <⟦email⟧>
받는 사람: 회계팀 <⟦email1⟧>
제목: 청구서 ⟦inv⟧ 환불 요청

안녕하세요,
청구서 ⟦inv⟧ 금액이 제 카드 ⟦card⟧에서 두 번 결제되었습니다.
해외 계좌 ⟦iban⟧로 환불 부탁드립니다. 연락처: ⟦phone⟧
⟦name⟧ 드림 (생년월일: ⟦dob⟧)
""",
        """보낸 사람: ⟦name1⟧ <⟦email1⟧>
받는 사람: ⟦email⟧
제목: 테스트 서버 접속 정보

⟦name⟧ 님, 접속 정보입니다. 아이디 ⟦login⟧, 비밀번호: ⟦pw⟧
DB: postgresql://⟦cred⟧@db.example.org/stage
저장소 ⟦ssh⟧, 로고 ⟦retina⟧. 급하면 ⟦mobile⟧로 전화 주세요.
""",
    ],
}

_CHATS = {
    "en": [
        """[10:21] ⟦first⟧: prod is down again, can you look?
[10:22] ⟦first1⟧: db at ⟦ip⟧ refuses connections. is the password still ⟦pw⟧?
[10:22] ⟦first⟧: yes. new deploy key is ⟦ghp⟧
[10:23] ⟦first1⟧: ok, pushed to ⟦ssh⟧, tagged ⟦ver⟧
[10:24] ⟦first⟧: call me if it breaks: ⟦mobile⟧
""",
        """[09:02] ⟦first⟧: customer on the line, DOB ⟦dob⟧, SSN ⟦ssn⟧
[09:03] ⟦first1⟧: card on file?
[09:03] ⟦first⟧: ⟦rarecard⟧ (maestro)
[09:04] ⟦first1⟧: ref ⟦inv⟧ and mail them at ⟦email⟧, config says api_key=⟦var⟧
""",
    ],
    "de": [
        """[10:21] ⟦first⟧: Prod ist wieder down, kannst du schauen?
[10:22] ⟦first1⟧: DB auf ⟦ip⟧ lehnt ab. Ist das Passwort noch ⟦pw⟧?
[10:22] ⟦first⟧: ja. Neuer Deploy-Key: ⟦ghp⟧
[10:23] ⟦first1⟧: ok, liegt in ⟦ssh⟧, Tag ⟦ver⟧
[10:24] ⟦first⟧: ruf an, falls was ist: ⟦mobile⟧
""",
        """[09:02] ⟦first⟧: Kunde am Telefon, geb. ⟦dob⟧, Rückruf unter ⟦phone⟧
[09:03] ⟦first1⟧: IBAN?
[09:03] ⟦first⟧: ⟦iban⟧, Mandat ⟦mandate⟧
[09:04] ⟦first1⟧: danke, Mail an ⟦email⟧, Doku ⟦sec⟧
""",
    ],
    "fr": [
        """[10:21] ⟦first⟧ : la prod est encore tombée, tu regardes ?
[10:22] ⟦first1⟧ : la base sur ⟦ip⟧ refuse. le mot de passe c'est toujours ⟦pw⟧ ?
[10:22] ⟦first⟧ : oui. nouveau token : ⟦ghp⟧
[10:23] ⟦first1⟧ : ok, poussé sur ⟦ssh⟧, tag ⟦ver⟧
[10:24] ⟦first⟧ : appelle-moi au ⟦mobile⟧
""",
        """[09:02] ⟦first⟧ : cliente au téléphone, née le ⟦dob⟧, rappel au ⟦phone⟧
[09:03] ⟦first1⟧ : son IBAN ?
[09:03] ⟦first⟧ : ⟦iban⟧, mandat ⟦mandate⟧
[09:04] ⟦first1⟧ : merci, mail à ⟦email⟧, cf. ⟦sec⟧
""",
    ],
    "es": [
        """[10:21] ⟦first⟧: producción caída otra vez, ¿lo miras?
[10:22] ⟦first1⟧: la base en ⟦ip⟧ rechaza conexiones. ¿la contraseña sigue siendo ⟦pw⟧?
[10:22] ⟦first⟧: sí. token nuevo: ⟦ghp⟧
[10:23] ⟦first1⟧: vale, subido a ⟦ssh⟧, etiqueta ⟦ver⟧
[10:24] ⟦first⟧: llámame al ⟦mobile⟧
""",
        """[09:02] ⟦first⟧: cliente al teléfono, nacido el ⟦dob⟧, devolver llamada al ⟦phone⟧
[09:03] ⟦first1⟧: ¿IBAN?
[09:03] ⟦first⟧: ⟦iban⟧, orden ⟦mandate⟧
[09:04] ⟦first1⟧: gracias, correo a ⟦email⟧, ver ⟦sec⟧
""",
    ],
    "ko": [
        """[10:21] ⟦first⟧: 운영 서버 또 다운됐어요, 확인 좀 해 주세요
[10:22] ⟦first1⟧: ⟦ip⟧ DB가 연결을 거부하네요. 비밀번호 아직 ⟦pw⟧ 맞죠?
[10:22] ⟦first⟧: 네. 새 배포 토큰은 ⟦ghp⟧
[10:23] ⟦first1⟧: ⟦ssh⟧에 푸시했고 태그는 ⟦ver⟧
[10:24] ⟦first⟧: 문제 생기면 ⟦mobile⟧로 전화 주세요
""",
        """[09:02] ⟦first⟧: 고객 전화 중, 생년월일 ⟦dob⟧, 회신 번호 ⟦phone⟧
[09:03] ⟦first1⟧: 카드 번호는?
[09:03] ⟦first⟧: ⟦card⟧
[09:04] ⟦first1⟧: 감사합니다, ⟦email⟧로 메일 보낼게요. 문서 ⟦sec⟧
""",
    ],
}

_SHARED = {
    "log": _LOGS,
    "config": _CONFIGS,
    "csv": _CSVS,
    "json": _JSONS,
    "stacktrace": _STACKS,
    "form": _FORMS,
    "invoice": _INVOICES,
}
_PROSE = {"ticket": _TICKETS, "email": _EMAILS, "chat": _CHATS}
_EN_REGIONS = (("US",), ("GB",), ("US", "GB"), ("US",))
_REGIONS = {"de": ("DE",), "fr": ("FR",), "es": ("ES",), "ko": ("KR",)}


def _template(kind: str, lang: str, variant: int) -> str:
    """The template of one text: shared ones rotate, prose ones are the language's own."""
    options = _PROSE[kind][lang] if kind in _PROSE else _SHARED[kind]
    return options[(variant + LANGS.index(lang)) % len(options)]


def corpus(seed: int = SEED) -> list[dict[str, Any]]:
    """Every labelled text (kinds x languages x variants), the same for the same seed."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible corpus, not key material
    texts = []
    for kind in KINDS:
        for lang in LANGS:
            for variant in range(VARIANTS):
                regions = _EN_REGIONS[variant] if lang == "en" else _REGIONS[lang]
                if kind == "csv" and _template(kind, lang, variant) is _CSVS[2]:
                    regions = tuple(dict.fromkeys((*regions, "US")))
                seeded = random.Random(rng.getrandbits(64))  # noqa: S311 - as above
                maker = Maker(seeded, lang, regions)
                text, spans, negatives = render(
                    _template(kind, lang, variant), _filler(maker, lang)
                )
                texts.append(
                    {
                        "id": f"{kind}-{lang}-{variant}",
                        "kind": kind,
                        "lang": lang,
                        "text": text,
                        "spans": spans,
                        "negatives": negatives,
                        "regions": list(regions),
                    }
                )
    return texts


def negative_counts(texts: list[dict[str, Any]] | None = None) -> Counter[str]:
    """How many hard negatives of each kind the corpus (default: ``corpus()``) holds."""
    return Counter(
        n["kind"] for t in (corpus() if texts is None else texts) for n in t["negatives"]
    )


def type_counts(texts: list[dict[str, Any]] | None = None) -> Counter[str]:
    """How many gold spans of each PII type the corpus (default: ``corpus()``) holds."""
    return Counter(s["type"] for t in (corpus() if texts is None else texts) for s in t["spans"])
