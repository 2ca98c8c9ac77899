"""The private CA: constraints and key usages as TLS peers check them, and a CA rotation
that keeps old certificates trusted until every one is re-issued."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from awe.core.errors import Conflict, ValidationFailed
from awe.ops import certs


def test_the_ca_and_leaves_carry_the_right_constraints(tmp_path: Path) -> None:
    """The CA is a CA (path length 0, signs certificates); a server leaf is no CA, is for
    server auth, names its SANs (names and addresses), and lasts no longer than its CA."""
    ca = certs.init_ca(tmp_path, days=100)
    leaf = certs.issue(tmp_path, "api", sans=["api.internal", "10.0.0.7"], days=500)
    ca_cert = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    leaf_cert = x509.load_pem_x509_certificate((tmp_path / "api.pem").read_bytes())
    constraints = ca_cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert constraints.value.path_length == 0
    assert ca_cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert not leaf_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = leaf_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert leaf.sans == ("api.internal", "10.0.0.7")
    assert leaf.not_after <= ca.not_after
    leaf_cert.verify_directly_issued_by(ca_cert)
    assert (tmp_path / "api.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "ca.key").stat().st_mode & 0o777 == 0o600
    assert certs.describe(tmp_path / "api.pem").kind == "server"


def test_a_ca_rotation_keeps_old_leaves_trusted_until_all_are_reissued(tmp_path: Path) -> None:
    """After `rotate ca` the bundle holds both CAs, so a leaf of the old CA still verifies;
    `rotate --all` re-issues it under the new CA and drops the old one from the bundle."""
    certs.init_ca(tmp_path)
    certs.issue(tmp_path, "worker", kind="client")
    certs.rotate_ca(tmp_path)
    bundle = certs.load_bundle(tmp_path / certs.BUNDLE)
    assert len(bundle) == 2
    assert certs.issued_by(tmp_path / "worker.pem", bundle) == bundle[1]  # the previous CA
    reissued = certs.rotate_all(tmp_path)
    assert [c.name for c in reissued] == ["worker"]
    assert reissued[0].kind == "client"
    bundle = certs.load_bundle(tmp_path / certs.BUNDLE)
    assert len(bundle) == 1
    assert certs.issued_by(tmp_path / "worker.pem", bundle) == bundle[0]
    assert not (tmp_path / certs.PREVIOUS_CA).exists()


def test_bad_names_and_a_second_ca_are_refused(tmp_path: Path) -> None:
    """A name with a slash, the CA's own name, or an empty SAN is refused with what would be
    right; init refuses to replace a CA (rotate does that)."""
    certs.init_ca(tmp_path, now=datetime.now(UTC))
    with pytest.raises(ValidationFailed, match="letters, digits"):
        certs.issue(tmp_path, "../evil")
    with pytest.raises(ValidationFailed, match="the CA's own name"):
        certs.issue(tmp_path, "ca")
    with pytest.raises(ValidationFailed, match="host name or an IP"):
        certs.issue(tmp_path, "x", sans=["has space"])
    with pytest.raises(Conflict, match="rotate ca"):
        certs.init_ca(tmp_path)
