"""A private certificate authority and its leaf certificates (``awe certs``), built with
``cryptography``: ECDSA P-256 keys written 0600, CA constraints and key usages set as TLS
clients and servers check them, SANs from names and addresses.

Files in ``$AWE_HOME/certs`` (mode 700): ``ca.pem``/``ca.key``, ``ca-bundle.pem`` (what peers
trust: the CA, and after a CA rotation the previous one too, until every leaf is re-issued),
and ``NAME.pem`` (the leaf, then the CA) / ``NAME.key`` per leaf.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from awe.core.crypto import write_private
from awe.core.errors import Conflict, NotFound, ValidationFailed

Kind = Literal["server", "client"]
CA_NAME = "ca"
BUNDLE = "ca-bundle.pem"
PREVIOUS_CA = "ca-previous.pem"
CA_DAYS = 3650
LEAF_DAYS = 397  # what browsers accept for a server certificate


def folder_of(home: Path) -> Path:
    """Where the certificates of an installation live."""
    return home / "certs"


@dataclass(frozen=True)
class CertInfo:
    """What a certificate file says."""

    name: str
    path: Path
    subject: str
    issuer: str
    is_ca: bool
    kind: str
    sans: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    fingerprint: str

    def days_left(self, now: datetime) -> float:
        """Days until it expires (negative once it has)."""
        return (self.not_after - now).total_seconds() / 86400

    def as_dict(self, now: datetime) -> dict[str, object]:
        """The JSON form."""
        return {
            "name": self.name,
            "path": str(self.path),
            "subject": self.subject,
            "issuer": self.issuer,
            "is_ca": self.is_ca,
            "kind": self.kind,
            "sans": list(self.sans),
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "days_left": round(self.days_left(now), 1),
            "fingerprint": self.fingerprint,
        }


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "awe"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _valid_name(name: str) -> str:
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise ValidationFailed(
            f"certificate name {name!r}: use letters, digits, '-', '_' or '.' (e.g. server)"
        )
    if name in (CA_NAME, "ca-bundle", "ca-previous"):
        raise ValidationFailed(f"{name!r} is the CA's own name; choose another")
    return name


def load_cert(path: Path) -> x509.Certificate:
    """The first certificate of a PEM file; ValidationFailed when it does not parse."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (ValueError, OSError) as exc:
        raise ValidationFailed(f"{path} is not a PEM certificate ({exc})") from None


def load_bundle(path: Path) -> list[x509.Certificate]:
    """Every certificate of a PEM file."""
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except (ValueError, OSError) as exc:
        raise ValidationFailed(f"{path} is not a PEM bundle ({exc})") from None


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """A private key file (PEM, unencrypted)."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as exc:
        raise ValidationFailed(f"{path} is not an unencrypted PEM private key ({exc})") from None
    return key  # type: ignore[return-value]


def init_ca(folder: Path, *, days: int = CA_DAYS, now: datetime | None = None) -> CertInfo:
    """Make the CA; Conflict when there is one already (``rotate ca`` replaces it)."""
    if (folder / f"{CA_NAME}.pem").exists():
        raise Conflict(f"{folder / 'ca.pem'} exists already; awe certs rotate ca replaces it")
    return _write_ca(folder, days=days, now=now or datetime.now(UTC))


def _write_ca(folder: Path, *, days: int, now: datetime) -> CertInfo:
    key = _new_key()
    subject = _name(f"awe CA {now:%Y-%m-%d}")
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)
    write_private(folder / f"{CA_NAME}.key", _key_pem(key))
    (folder / f"{CA_NAME}.pem").write_text(_cert_pem(cert))
    _write_bundle(folder)
    return describe(folder / f"{CA_NAME}.pem")


def _write_bundle(folder: Path) -> None:
    parts = [(folder / f"{CA_NAME}.pem").read_text()]
    previous = folder / PREVIOUS_CA
    if previous.exists():
        parts.append(previous.read_text())
    (folder / BUNDLE).write_text("".join(parts))


def _ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = folder / f"{CA_NAME}.pem", folder / f"{CA_NAME}.key"
    if not cert_path.exists() or not key_path.exists():
        raise NotFound(f"no CA in {folder}: awe certs init makes one")
    return load_cert(cert_path), load_key(key_path)


def _alt_names(sans: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for san in sans:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(san)))
        except ValueError:
            if not san or " " in san:
                raise ValidationFailed(f"SAN {san!r}: give a host name or an IP address") from None
            names.append(x509.DNSName(san))
    return names


def issue(
    folder: Path,
    name: str,
    *,
    sans: list[str] | None = None,
    kind: Kind = "server",
    days: int = LEAF_DAYS,
    now: datetime | None = None,
) -> CertInfo:
    """Issue (or re-issue) leaf ``name`` signed by the CA. A server certificate names
    ``sans`` (default: localhost, 127.0.0.1, ::1); a client's common name is ``name``."""
    _valid_name(name)
    if days < 1:
        raise ValidationFailed("--days must be 1 or more")
    moment = now or datetime.now(UTC)
    ca_cert, ca_key = _ca(folder)
    chosen = sans if sans else (["localhost", "127.0.0.1", "::1"] if kind == "server" else [])
    key = _new_key()
    public = key.public_key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if kind == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(moment - timedelta(minutes=5))
        .not_valid_after(min(moment + timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    if chosen:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(_alt_names(chosen)), critical=False
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    write_private(folder / f"{name}.key", _key_pem(key))
    (folder / f"{name}.pem").write_text(_cert_pem(cert) + _cert_pem(ca_cert))
    return describe(folder / f"{name}.pem")


def describe(path: Path) -> CertInfo:
    """What a certificate file says (its first certificate)."""
    cert = load_cert(path)
    try:
        is_ca = bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        is_ca = False
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        kinds = [
            k
            for k, oid in (
                ("server", ExtendedKeyUsageOID.SERVER_AUTH),
                ("client", ExtendedKeyUsageOID.CLIENT_AUTH),
            )
            if oid in usages
        ]
    except x509.ExtensionNotFound:
        kinds = []
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        values = [*alt.get_values_for_type(x509.DNSName), *alt.get_values_for_type(x509.IPAddress)]
        sans = tuple(str(v) for v in values)
    except x509.ExtensionNotFound:
        sans = ()
    return CertInfo(
        name=path.stem,
        path=path,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        is_ca=is_ca,
        kind="ca" if is_ca else "+".join(kinds) or "any",
        sans=sans,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        fingerprint=cert.fingerprint(hashes.SHA256()).hex()[:32],
    )


def listed(folder: Path) -> list[CertInfo]:
    """Every certificate file in the folder (bundles aside), the CA first."""
    if not folder.is_dir():
        return []
    paths = sorted(p for p in folder.glob("*.pem") if p.name not in (BUNDLE, PREVIOUS_CA))
    paths.sort(key=lambda p: p.stem != CA_NAME)
    return [describe(p) for p in paths]


def key_matches(cert_path: Path, key_path: Path) -> bool:
    """Whether the private key is the certificate's."""
    cert = load_cert(cert_path)
    key = load_key(key_path)
    same = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return bool(same)


def issued_by(cert_path: Path, bundle: list[x509.Certificate]) -> x509.Certificate | None:
    """The certificate of the bundle that signed this one, or None."""
    cert = load_cert(cert_path)
    for ca in bundle:
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return ca
    return None


def rotate_ca(folder: Path, *, days: int = CA_DAYS, now: datetime | None = None) -> CertInfo:
    """A new CA; the old one stays trusted in the bundle until ``rotate --all`` re-issues the
    leaves under the new one."""
    current = folder / f"{CA_NAME}.pem"
    if not current.exists():
        raise NotFound(f"no CA in {folder}: awe certs init makes one")
    (folder / PREVIOUS_CA).write_text(current.read_text())
    return _write_ca(folder, days=days, now=now or datetime.now(UTC))


def rotate_leaf(folder: Path, name: str, *, now: datetime | None = None) -> CertInfo:
    """Re-issue a leaf with its kind and SANs, for as many days as it had."""
    path = folder / f"{_valid_name(name)}.pem"
    if not path.exists():
        raise NotFound(f"no certificate {name} in {folder} (awe certs list shows them)")
    old = describe(path)
    days = max(1, round((old.not_after - old.not_before).total_seconds() / 86400))
    kind: Kind = "client" if old.kind == "client" else "server"
    return issue(folder, name, sans=list(old.sans), kind=kind, days=days, now=now)


def rotate_all(folder: Path, *, now: datetime | None = None) -> list[CertInfo]:
    """Re-issue every leaf under the current CA, then stop trusting the previous CA."""
    done = [rotate_leaf(folder, info.name, now=now) for info in listed(folder) if not info.is_ca]
    previous = folder / PREVIOUS_CA
    if previous.exists():
        previous.unlink()
        _write_bundle(folder)
    return done
