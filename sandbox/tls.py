"""A local CA (trustme) and the files the servers and clients need: CA bundle, server cert + key, client cert."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Paths of the PEM files written into the work folder, and what Entra needs to check client assertions."""

    ca_bundle: Path
    server_cert: Path
    server_key: Path
    client_cert: (
        Path  # private key + certificate of the app registration (client assertion / certificate credential)
    )
    client_cert_thumbprint: str  # SHA-1 hex, the form MSAL's client_credential={"thumbprint": ...} takes
    client_public_key_pem: bytes


def write_tls_files(work_dir: Path) -> TlsFiles:
    """Create a CA, a server certificate for 127.0.0.1 and localhost, and a client certificate; write them as PEM."""
    ca = trustme.CA(organization_name="BC integration sandbox")
    server = ca.issue_cert("127.0.0.1", "localhost")
    # RSA: MSAL signs client assertions with RS256/PS256.
    client = ca.issue_cert("sandbox-app.sandbox.local", key_type=trustme.KeyType.RSA)
    ca_bundle = work_dir / "sandbox-ca.pem"
    ca.cert_pem.write_to_path(str(ca_bundle))
    server_cert = work_dir / "server-cert.pem"
    server_key = work_dir / "server-key.pem"
    server.cert_chain_pems[0].write_to_path(str(server_cert))
    for extra in server.cert_chain_pems[1:]:
        extra.write_to_path(str(server_cert), append=True)
    server.private_key_pem.write_to_path(str(server_key))
    client_cert = work_dir / "client-cert.pem"
    client.private_key_and_cert_chain_pem.write_to_path(str(client_cert))
    certificate = x509.load_pem_x509_certificate(client.cert_chain_pems[0].bytes())
    der = certificate.public_bytes(serialization.Encoding.DER)
    thumbprint = hashlib.sha1(der, usedforsecurity=False).hexdigest()
    public_pem = certificate.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return TlsFiles(ca_bundle, server_cert, server_key, client_cert, thumbprint, public_pem)
