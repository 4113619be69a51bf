"""A booted Debian container (systemd-nspawn) for the package tests, driven with nsenter.

The same rig as ``make test-systemd`` (issue 12): ``systemd-nspawn -b --register=no
--private-network`` on a copy of a cached debootstrap root, commands run inside by entering
the container init's namespaces (``systemd-run -M`` needs machined registration).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

ENV = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "HOME=/root",
       "DEBIAN_FRONTEND=noninteractive", "TERM=dumb"]


class Container:
    """One booted copy of ``pristine``; everything it writes stays in ``workdir``."""

    def __init__(self, pristine: Path, workdir: Path, name: str) -> None:
        self.root = workdir / "root"
        self.console = workdir / "console.log"
        self.name = name
        subprocess.run(["cp", "-a", "--reflink=auto", str(pristine), str(self.root)], check=True)
        env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1")
        with self.console.open("wb") as out:
            self.proc = subprocess.Popen(
                ["systemd-nspawn", "-D", str(self.root), "--register=no", "--keep-unit", "-b",
                 "--console=read-only", "--private-network", "-M", name],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True)
        self.leader = self._leader()
        self.wait_booted()

    def _leader(self) -> int:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nspawn exited: {self.console.read_text()[-2000:]}")
            for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
                kids = (task / "children").read_text().split()
                if kids:
                    return int(kids[0])
            time.sleep(0.2)
        raise RuntimeError("no container init appeared")

    def wait_booted(self) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            res = self.run("systemctl is-system-running --wait", check=False, timeout=180)
            if res.stdout.strip() in ("running", "degraded"):
                return
            time.sleep(1)
        raise RuntimeError(f"container did not boot: {self.console.read_text()[-2000:]}")

    def run(self, cmd: str, *, check: bool = True, timeout: float = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` with sh inside the container, as root."""
        extra = [f"{k}={v}" for k, v in (env or {}).items()]
        argv = ["nsenter", "-t", str(self.leader), "-m", "-u", "-i", "-n", "-p", "-C", "-r",
                "-w", "--", *ENV, *extra, "sh", "-c", cmd]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"{cmd!r} -> {res.returncode}\n{res.stdout}\n{res.stderr}")
        return res

    def path(self, inside: str) -> Path:
        """The host path of a file inside the container."""
        return self.root / inside.lstrip("/")

    def shutdown(self) -> None:
        if self.proc.poll() is None:
            # nspawn turns SIGTERM into a clean poweroff of a booted container.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
