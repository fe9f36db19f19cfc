"""The local certificate authority `studio up` serves HTTPS with."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

from cryptography import x509

from cli import tls


def test_the_ca_is_made_once_keys_are_private_and_the_server_certificate_is_signed_by_it(tmp_path: Path) -> None:
    files = tls.ensure_certificates(tmp_path, "127.0.0.1")
    for key in (files.server_key, tmp_path / "tls" / "ca-key.pem"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert "localhost" in names.get_values_for_type(x509.DNSName)

    ca_bytes = files.ca_cert.read_bytes()
    again = tls.ensure_certificates(tmp_path, "studio.example.test")
    assert again.ca_cert.read_bytes() == ca_bytes  # clients keep trusting the same CA
    renamed = x509.load_pem_x509_certificate(again.server_cert.read_bytes())
    assert "studio.example.test" in renamed.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.DNSName)
    renamed.verify_directly_issued_by(ca)
