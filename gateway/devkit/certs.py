"""A throwaway PKI for TLS tests, made with the ``openssl`` command-line tool.

``make_pki(directory)`` writes a test CA, a server certificate for ``localhost`` /
``127.0.0.1``, a client certificate (for mTLS) and a second, unrelated "wrong" CA (for
"TLS refused" tests). Python's ``ssl`` checks the subjectAltName, not the CN, so the server
certificate carries ``DNS:localhost, IP:127.0.0.1`` (notes/store-and-forward.md §5.1).

``make_server_cert(pki, name, days=...)`` issues further server certificates, including ones
that are already expired (``days <= 0``) or expire soon (``gatewayctl doctor`` warns when a
certificate expires within 30 days).

Keys are EC P-256: generating them is much faster than RSA on a Pi or a loaded CI box, and both
Mosquitto and Python's ``ssl`` accept them. Private keys are written mode 0600.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = ["OpensslMissing", "TestPki", "find_openssl", "make_pki", "make_server_cert"]

_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()
_cache: dict[Path, TestPki] = {}

_KEY_ARGS = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
_MARKER = ".pki-complete"


class OpensslMissing(RuntimeError):
    """The ``openssl`` command is not installed."""


@dataclass(frozen=True, slots=True)
class TestPki:
    """Paths of the files :func:`make_pki` wrote."""

    __test__ = False  # not a pytest test class despite the name

    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    wrong_ca_cert: Path
    wrong_ca_key: Path


def find_openssl() -> str:
    """Return the path of ``openssl`` or raise :class:`OpensslMissing` saying how to install it."""
    path = shutil.which("openssl")
    if path is None:
        raise OpensslMissing(
            "openssl not found: install it with `sudo apt-get install openssl` "
            "(or run `make test` as root, which runs scripts/ensure-system-deps.sh)"
        )
    return path


def _run(args: list[str], cwd: Path) -> None:
    proc = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [find_openssl(), *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed ({proc.returncode}): {proc.stderr.strip()}")


def _lock_for(directory: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(directory, threading.Lock())


def _self_signed_ca(directory: Path, stem: str, cn: str, days: int) -> None:
    _run(
        [
            "req", "-x509", *_KEY_ARGS, "-days", str(days), "-subj", f"/CN={cn}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", f"{stem}.key", "-out", f"{stem}.crt",
        ],
        directory,
    )  # fmt: skip
    os.chmod(directory / f"{stem}.key", 0o600)


def _issue(
    ca_cert: Path,
    ca_key: Path,
    directory: Path,
    *,
    stem: str,
    cn: str,
    extensions: str,
    days: int,
) -> tuple[Path, Path]:
    """Issue ``stem.crt``/``stem.key`` signed by the CA; ``days <= 0`` makes it already expired."""
    key, crt = directory / f"{stem}.key", directory / f"{stem}.crt"
    with tempfile.TemporaryDirectory(dir=directory, prefix=".issue-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "ext.cnf").write_text(f"[ext]\n{extensions}\n")
        _run(["req", *_KEY_ARGS, "-subj", f"/CN={cn}", "-keyout", str(key),
              "-out", "req.csr"], tmp)  # fmt: skip
        os.chmod(key, 0o600)
        serial = "0x" + secrets.token_hex(8)
        if days > 0:
            _run(
                [
                    "x509", "-req", "-in", "req.csr", "-CA", str(ca_cert), "-CAkey", str(ca_key),
                    "-set_serial", serial, "-days", str(days), "-extfile", "ext.cnf",
                    "-extensions", "ext", "-out", str(crt),
                ],
                tmp,
            )  # fmt: skip
        else:
            # `openssl x509 -req` (OpenSSL 3.0) cannot backdate notBefore; `openssl ca` can, so an
            # expired certificate gets a sane window that ended `-days` days (at least 1 h) ago.
            now = datetime.now(UTC)
            end = now - max(timedelta(days=-days), timedelta(hours=1))
            start = end - timedelta(days=30)
            fmt = "%Y%m%d%H%M%SZ"
            (tmp / "index.txt").write_text("")
            (tmp / "ca.cnf").write_text(
                "[ca]\ndefault_ca = test\n[test]\n"
                f"database = {tmp}/index.txt\nnew_certs_dir = {tmp}\nserial = {tmp}/serial\n"
                f"certificate = {ca_cert}\nprivate_key = {ca_key}\n"
                "default_md = sha256\npolicy = any\nunique_subject = no\ncopy_extensions = none\n"
                "[any]\ncommonName = supplied\n"
                f"[ext]\n{extensions}\n"
            )
            (tmp / "serial").write_text(serial[2:] + "\n")
            _run(
                [
                    "ca", "-batch", "-config", "ca.cnf", "-in", "req.csr", "-out", str(crt),
                    "-startdate", start.strftime(fmt), "-enddate", end.strftime(fmt),
                    "-extensions", "ext", "-notext",
                ],
                tmp,
            )  # fmt: skip
    return crt, key


_SERVER_EXT = (
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
    "extendedKeyUsage=serverAuth\nsubjectAltName={san}"
)
_CLIENT_EXT = (
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
    "extendedKeyUsage=clientAuth"
)


def make_pki(directory: Path, *, days: int = 30) -> TestPki:
    """Create (or reuse) the test PKI in ``directory``; safe to call from several threads.

    The PKI is cached per directory: in this process by path, across processes by a marker file
    written last, so a half-written directory (a killed run) is regenerated.
    """
    directory = Path(directory).resolve()
    with _lock_for(directory):
        cached = _cache.get(directory)
        if cached is not None:
            return cached
        pki = TestPki(
            directory=directory,
            ca_cert=directory / "ca.crt",
            ca_key=directory / "ca.key",
            server_cert=directory / "server.crt",
            server_key=directory / "server.key",
            client_cert=directory / "client.crt",
            client_key=directory / "client.key",
            wrong_ca_cert=directory / "wrong-ca.crt",
            wrong_ca_key=directory / "wrong-ca.key",
        )
        if not (directory / _MARKER).exists():
            directory.mkdir(parents=True, exist_ok=True)
            _self_signed_ca(directory, "ca", "attendance-gateway test CA", days + 1)
            _self_signed_ca(directory, "wrong-ca", "unrelated test CA", days + 1)
            server_ext = _SERVER_EXT.format(san="DNS:localhost,IP:127.0.0.1")
            _issue(pki.ca_cert, pki.ca_key, directory, stem="server", cn="localhost",
                   extensions=server_ext, days=days)  # fmt: skip
            _issue(pki.ca_cert, pki.ca_key, directory, stem="client", cn="test-client",
                   extensions=_CLIENT_EXT, days=days)  # fmt: skip
            (directory / _MARKER).write_text("ok\n")
        _cache[directory] = pki
        return pki


def make_server_cert(
    pki: TestPki,
    name: str,
    *,
    days: int,
    san: str = "DNS:localhost,IP:127.0.0.1",
    cn: str = "localhost",
) -> tuple[Path, Path]:
    """Issue another server certificate ``name.crt``/``name.key`` from the test CA.

    ``days`` is the validity from now: e.g. 10 for one that ``doctor`` should warn about, 0 or a
    negative number for one that has already expired (``-5``: expired five days ago).
    """
    with _lock_for(pki.directory):
        return _issue(pki.ca_cert, pki.ca_key, pki.directory, stem=name, cn=cn,
                      extensions=_SERVER_EXT.format(san=san), days=days)  # fmt: skip
