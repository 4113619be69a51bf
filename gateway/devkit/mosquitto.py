"""Finding and talking to the ``mosquitto`` binaries (for :mod:`gateway.devkit.broker`)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

HOST = "127.0.0.1"
INSTALL_HINT = (
    "install it with `sudo apt-get install mosquitto` (Debian/Raspberry Pi OS), "
    "or run `make test` as root, which runs scripts/ensure-system-deps.sh"
)


class MosquittoMissing(RuntimeError):
    """The ``mosquitto`` (or ``mosquitto_passwd``) binary is not installed."""


class BrokerError(RuntimeError):
    """The broker did not start (its log is in the message) or was used wrongly."""


def find_mosquitto(tool: str = "mosquitto") -> str:
    """Return the path of ``mosquitto`` (or ``mosquitto_passwd``), or raise saying how to get it.

    Debian installs the broker in /usr/sbin, which is not on a normal user's PATH.
    """
    found = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/local/sbin:/sbin")
    if found is None:
        raise MosquittoMissing(f"{tool} not found: {INSTALL_HINT}")
    return found


def free_ports(n: int, host: str = HOST) -> list[int]:
    """Return ``n`` distinct ports that were free a moment ago (bound together, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def write_password_file(path: Path, users: dict[str, str]) -> None:
    """A mosquitto password file holding ``users`` (mode 0600)."""
    passwd = find_mosquitto("mosquitto_passwd")
    path.unlink(missing_ok=True)
    path.touch(mode=0o600)
    for user, password in users.items():
        # -b takes the password on the command line: acceptable for throwaway test users.
        proc = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [passwd, "-b", str(path), user, password],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise BrokerError(f"mosquitto_passwd failed for user {user!r}: {proc.stderr}")


def accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
