"""HTTPS for the embedded studio: a local certificate authority under STUDIO_HOME and the HTTPS children.

Azure's SDK sends its bearer token only over HTTPS and checks the certificate against REQUESTS_CA_BUNDLE, so
`studio up` also serves the web app and the gateway over HTTPS with a certificate signed by a CA of its own
(`$STUDIO_HOME/tls/ca.pem`; the keys are 0600). The CA is made once and kept; the server certificate is
made again when its names change or it nears expiry. `studio sdk-env` reads what the running studio wrote in
`$STUDIO_HOME/tls/urls.json`.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cli.errors import CliError

CA_DAYS = 3650
SERVER_DAYS = 397
RENEW_BEFORE = datetime.timedelta(days=30)
DEFAULT_PORTS = {8000: 8443, 8001: 8444}  # the default studio's HTTPS ports; other ports get free ones


@dataclass(frozen=True)
class TlsFiles:
    """The CA certificate clients trust, and the server's certificate and key."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


def tls_dir(home: Path) -> Path:
    return home / "tls"


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    path.chmod(0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = folder / "ca.pem", folder / "ca-key.pem"
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if isinstance(key, ec.EllipticCurvePrivateKey) and cert.not_valid_after_utc - RENEW_BEFORE > _now():
            return cert, key
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Studio local CA ({socket.gethostname()})")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=CA_DAYS))
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _names(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    hosts = {host} if host not in ("", "0.0.0.0", "::") else {socket.gethostname()}
    for extra in sorted(hosts - {"localhost", "127.0.0.1", "::1"}):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(extra)))
        except ValueError:
            names.append(x509.DNSName(extra))
    return names


def ensure_certificates(home: Path, host: str) -> TlsFiles:
    """The CA (made once) and a server certificate for `host`, localhost and 127.0.0.1 signed by it."""
    folder = tls_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    ca_cert, ca_key = _ca(folder)
    files = TlsFiles(ca_cert=folder / "ca.pem", server_cert=folder / "server.pem", server_key=folder / "server-key.pem")
    names = _names(host)
    if files.server_cert.exists() and files.server_key.exists():
        cert = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
        current = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        if (
            set(current) == set(names)
            and cert.issuer == ca_cert.subject
            and cert.not_valid_after_utc - RENEW_BEFORE > _now()
        ):
            return files
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "studio")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(files.server_key, _key_pem(key))
    files.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return files


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host if host not in ("", "0.0.0.0", "::") else "127.0.0.1", 0))
        return int(sock.getsockname()[1])


def https_port(explicit: int | None, *, http_port: int, host: str) -> int:
    """The HTTPS port: as given, else 8443/8444 beside the default 8000/8001, else a free one."""
    if explicit is not None:
        if not 0 < explicit < 65536:
            raise CliError(f"HTTPS port must be between 1 and 65535, got {explicit}")
        return explicit
    return DEFAULT_PORTS.get(http_port) or _free_port(host)


@dataclass(frozen=True)
class HttpsPlan:
    """Where `studio up` serves HTTPS and with which certificate."""

    files: TlsFiles
    ports: dict[str, int]  # child name (web, gateway) -> HTTPS port
    studio_url: str
    gateway_url: str

    def children(self, children: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
        """The web and gateway children again, on their HTTPS ports with the server certificate."""
        extra = []
        for name, argv in children:
            if name not in self.ports:
                continue
            index = argv.index("--port")
            copy = [*argv[: index + 1], str(self.ports[name]), *argv[index + 2 :]]
            copy += ["--ssl-keyfile", str(self.files.server_key), "--ssl-certfile", str(self.files.server_cert)]
            extra.append((f"{name}-https", copy))
        return extra

    def banner(self) -> list[str]:
        return [
            f"  HTTPS:         {self.studio_url}  gateway {self.gateway_url}",
            f"  CA:            {self.files.ca_cert}  (for the Azure SDK: studio sdk-env)",
        ]


def plan_https(
    home: Path, *, host: str, url_host: str, port: int, gateway_port: int, https: int | None, gateway_https: int | None
) -> HttpsPlan:
    """Make the certificates, choose the HTTPS ports and record them for `studio sdk-env`."""
    files = ensure_certificates(home, host)
    ports = {
        "web": https_port(https, http_port=port, host=host),
        "gateway": https_port(gateway_https, http_port=gateway_port, host=host),
    }
    plan = HttpsPlan(
        files=files,
        ports=ports,
        studio_url=f"https://{url_host}:{ports['web']}",
        gateway_url=f"https://{url_host}:{ports['gateway']}",
    )
    path = tls_dir(home) / "urls.json"
    body = {"studio_url": plan.studio_url, "gateway_url": plan.gateway_url, "ca_bundle": str(files.ca_cert)}
    path.write_text(json.dumps(body, indent=2))
    return plan


def read_urls(home: Path) -> dict[str, str]:
    """What the last `studio up` recorded, or a CliError saying to start it."""
    path = tls_dir(home) / "urls.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CliError(f"no HTTPS studio recorded in {path}: start the studio with `studio up` first") from None
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {path}: {exc}; run `studio up` again") from None
    if not isinstance(data, dict) or not {"studio_url", "ca_bundle"} <= set(data):
        raise CliError(f"{path} is not what `studio up` writes; run `studio up` again")
    return {key: str(value) for key, value in data.items()}
