"""Optional TLS for the cluster's connections: a self-signed certificate, pinned by its SHA-256 fingerprint.

How this works. `sched-lab controller --tls` makes (with the `openssl` command) a self-signed EC
certificate and key in the profile's security folder (key 0600) and writes the certificate's
fingerprint ("sha256:<hex of the DER>") into both connection files. Peers connect with TLS without a
certificate authority or host name check and accept the connection only if the certificate the
controller shows has exactly that fingerprint (`check_fingerprint`), so a file copied to an engine
host is all it needs. The HMAC challenge-response still runs inside TLS.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import ssl
import subprocess
from pathlib import Path

from .error import AuthenticationError

CERT_FILE = "controller-cert.pem"
KEY_FILE = "controller-key.pem"


def make_self_signed(security_dir: Path, days: int = 3650) -> tuple[Path, Path]:
    """A fresh self-signed certificate and key in `security_dir`; returns (cert, key). Raises RuntimeError."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("--tls needs the openssl command, which is not installed")
    cert, key = security_dir / CERT_FILE, security_dir / KEY_FILE
    tmp_key = key.with_suffix(".tmp")
    fd = os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    proc = subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                           "-nodes", "-keyout", str(tmp_key), "-out", str(cert), "-days", str(days),
                           "-subj", "/CN=sched-lab-controller"], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl could not make a certificate: {proc.stderr.strip()[-500:]}")
    os.chmod(tmp_key, 0o600)
    os.replace(tmp_key, key)
    return cert, key


def fingerprint_of_der(der: bytes) -> str:
    """The pin of a certificate given in DER form."""
    return "sha256:" + hashlib.sha256(der).hexdigest()


def fingerprint(cert_path: Path) -> str:
    """The pin of a PEM certificate file."""
    return fingerprint_of_der(ssl.PEM_cert_to_DER_cert(Path(cert_path).read_text()))


def server_context(cert_path: str, key_path: str) -> ssl.SSLContext:
    """The controller's TLS context (TLS 1.2 or later)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_path, key_path)
    return ctx


def client_context() -> ssl.SSLContext:
    """A peer's TLS context: no CA, no host name; the certificate is checked by `check_fingerprint`."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def check_fingerprint(der: bytes | None, expected: str) -> None:
    """Raise AuthenticationError unless the controller's certificate `der` has the pinned fingerprint."""
    got = fingerprint_of_der(der) if der else "none"
    if not hmac.compare_digest(got, expected):
        raise AuthenticationError(f"the controller's TLS certificate {got[:23]}... is not the pinned "
                                  f"{expected[:23]}...")
