"""Real servers for tests beside the local stack: an S3-compatible object store (moto's
``moto_server``, a dev dependency) and a redis-server that wants a password and speaks TLS.

Each runs as a child process on a free 127.0.0.1 port, writes its log into a temporary
folder, and is stopped (TERM, then KILL) when its block ends.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

from shadowline.stack import free_port, redis_binary

HOST = "127.0.0.1"


@contextlib.contextmanager
def _process(
    argv: list[str], log_path: Path, ready: Callable[[], bool], timeout_s: float
) -> Iterator[None]:
    log = log_path.open("wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{argv[0]} did not become ready:\n{tail}")
            time.sleep(0.05)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code < 500
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def s3_server(folder: Path, timeout_s: float = 20.0) -> Iterator[str]:
    """Start ``moto_server``; yields its endpoint URL once it answers HTTP."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://{HOST}:{port}"
    binary = str(Path(sys.executable).parent / "moto_server")
    argv = [binary, "-H", HOST, "-p", str(port)]
    with _process(argv, folder / "moto.log", lambda: _answers(url), timeout_s):
        yield url


@dataclass(frozen=True)
class TlsFiles:
    """A self-signed certificate for 127.0.0.1 (it is its own CA) and its key."""

    cert: Path
    key: Path


def self_signed(folder: Path) -> TlsFiles:
    """Write a fresh self-signed certificate for 127.0.0.1 and localhost into ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    files = TlsFiles(cert=folder / "cert.pem", key=folder / "key.pem")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


@contextlib.contextmanager
def secure_redis(folder: Path, password: str, timeout_s: float = 10.0) -> Iterator[str]:
    """A redis-server that speaks TLS only and wants ``password``.  Yields the ``rediss://``
    DSN a client needs (password and CA file included)."""
    tls = self_signed(folder / "tls")
    port = free_port()
    options = {
        "port": "0",
        "tls-port": str(port),
        "bind": HOST,
        "tls-cert-file": str(tls.cert),
        "tls-key-file": str(tls.key),
        "tls-ca-cert-file": str(tls.cert),
        "tls-auth-clients": "no",
        "requirepass": password,
        "save": "",
        "appendonly": "no",
    }
    argv = [str(redis_binary())]
    for name, value in options.items():
        argv += [f"--{name}", value]
    dsn = f"rediss://:{password}@{HOST}:{port}/0?ssl_ca_certs={tls.cert}"

    def ready() -> bool:
        try:
            with redis.Redis.from_url(dsn, socket_timeout=0.5) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    with _process(argv, folder / "redis.log", ready, timeout_s):
        yield dsn
