"""What a support bundle is made of, shared by ``gatewayctl bundle`` and the remote ``bundle``
verb (issue 16): the config with secrets redacted, the versions of everything, the journal.

Stdlib only, imported lazily by both: every CLI module is imported to build the parser.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

SECRET_KEY = re.compile(r"^(\s*[\w.-]*password\s*=\s*)(.*)$", re.IGNORECASE | re.MULTILINE)
PACKAGES = (
    "attendance-gateway",
    "paho-mqtt",
    "pyzk-new",
    "pyserial",
    "structlog",
    "tenacity",
    "RPi.GPIO",
    "rpi-lgpio",
    "cryptography",
)


def redact(text: str) -> str:
    """Every ``...password = value`` (MQTT, a ZK comm key) becomes ``"<redacted>"``;
    ``password_file`` keeps its path, which is not a secret."""

    def sub(m: re.Match[str]) -> str:
        if m.group(1).strip().lower().startswith("password_file"):
            return m.group(0)
        return m.group(1) + '"<redacted>"'

    return SECRET_KEY.sub(sub, text)


def versions() -> dict[str, Any]:
    import platform
    import sys
    from importlib import metadata

    out: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    try:
        out["os"] = platform.freedesktop_os_release().get("PRETTY_NAME")
    except OSError:
        out["os"] = None
    try:
        out["board"] = Path("/proc/device-tree/model").read_text().rstrip("\0\n") or None
    except OSError:
        out["board"] = None
    return out


def journal() -> str | None:
    import shutil
    import subprocess

    journalctl = shutil.which("journalctl")
    if journalctl is None:
        return None
    argv = [journalctl, "-u", "attendance-gateway", "-n", "1000", "--no-pager", "-o", "short-iso"]
    try:
        res = subprocess.run(  # noqa: S603 - a fixed argv, the binary resolved on PATH above
            argv,
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"journalctl failed: {err}"
    return res.stdout + (f"\n[journalctl stderr] {res.stderr}" if res.stderr else "")
