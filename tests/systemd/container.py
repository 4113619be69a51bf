"""A booted Debian container for ``make test-systemd`` (issue 12): systemd-nspawn + nsenter.

The cached debootstrap root (scripts/test-systemd.sh) stays pristine: each run boots an
overlay of it (upper layer in a scratch folder), so a reboot inside the run keeps what was
installed, and the next run starts clean. The container is driven by entering the
namespaces of its init with ``nsenter`` (``systemd-run -M`` needs machined registration,
which ``--register=no`` turns off), so ``systemctl``/``journalctl`` talk to the container's
own systemd.

nspawn flags, as tried by hand in issue 12: ``--private-network`` (the host may run its own
broker on 1883; the container has only loopback), ``SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1``
(cgroup v2 inside, as on Raspberry Pi OS), and ``--system-call-filter=bpf``: without it
nspawn's own seccomp filter makes ``bpf()`` fail, and systemd then silently does not
enforce ``DevicePolicy=``/``DeviceAllow=`` (cgroup v2 device control is a BPF program).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV = [
    "PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root",
    "LANG=C.UTF-8",
    "SYSTEMD_PAGER=",
    "SYSTEMD_COLORS=0",
]


class ContainerError(AssertionError):
    """A step inside the container failed; the message carries its output."""


def wait_until(cond: Callable[[], Any], timeout: float, what: str, every: float = 0.5) -> Any:
    """Poll ``cond`` until truthy (generous deadlines, never a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise ContainerError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


class Container:
    def __init__(self, lower: Path, scratch: Path, name: str = "attgw-test") -> None:
        self.lower = lower
        self.scratch = scratch
        self.name = name
        self.root = scratch / "merged"
        self.boot_log = scratch / "boot.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.init_pid = 0
        self.boots = 0

    # -- life cycle ------------------------------------------------------------------------
    def mount(self) -> None:
        for d in ("upper", "work", "merged"):
            (self.scratch / d).mkdir(parents=True, exist_ok=True)
        opts = (
            f"lowerdir={self.lower},upperdir={self.scratch / 'upper'},"
            f"workdir={self.scratch / 'work'}"
        )
        cmd = ["mount", "-t", "overlay", "overlay", "-o", opts, str(self.root)]
        subprocess.run(cmd, check=True)

    def boot(self, timeout: float = 120) -> None:
        env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1")
        self.boots += 1
        log = open(self.boot_log, "ab")  # the child's stdout for its life; closed here after
        log.write(f"\n===== boot {self.boots} =====\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [
                "systemd-nspawn",
                "-D",
                str(self.root),
                f"--machine={self.name}",
                "--register=no",
                "--keep-unit",
                "-b",
                "--console=read-only",
                "--private-network",
                "--system-call-filter=bpf",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        self.init_pid = wait_until(self._find_init, 60, "the container's init")
        state = wait_until(
            lambda: self.sh(
                "systemctl is-system-running --wait", check=False, timeout=timeout
            ).stdout.strip(),
            timeout,
            "the container to finish booting",
        )
        if state not in ("running", "degraded"):
            raise ContainerError(f"container booted into {state!r}: {self.tail_boot_log()}")

    def _find_init(self) -> int:
        """The container's PID 1 as the host sees it: a descendant of our nspawn."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise ContainerError(f"systemd-nspawn exited: {self.tail_boot_log()}")
        todo, seen = [self.proc.pid], set()
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("NSpid:") and line.split()[-1] == "1" and pid != self.proc.pid:
                    return pid
            todo.extend(int(k) for k in kids)
        return 0

    def wait_exit(self, timeout: float = 90) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.init_pid = 0

    def reboot(self) -> None:
        """``systemctl reboot`` inside; nspawn exits (133) and we boot the same root again."""
        self.sh("systemctl reboot", check=False)
        rc = self.wait_exit()
        if rc not in (0, 133):
            raise ContainerError(f"nspawn exited {rc} on reboot: {self.tail_boot_log()}")
        self.boot()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.sh("systemctl poweroff", check=False, timeout=30)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # our own nspawn, by its pid
                self.proc.wait(timeout=30)
        subprocess.run(["umount", str(self.root)], check=False)
        shutil.rmtree(self.scratch, ignore_errors=True)

    def tail_boot_log(self, n: int = 30) -> str:
        try:
            lines = self.boot_log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no boot log)"
        return "\n".join(lines[-n:])

    # -- commands --------------------------------------------------------------------------
    def sh(
        self, script: str, *, check: bool = True, timeout: float = 180, user: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``bash -c script`` inside, as root (or as ``user`` via runuser)."""
        if not self.init_pid:
            raise ContainerError("the container is not running")
        cmd = ["bash", "-c", script]
        if user:
            cmd = ["runuser", "-u", user, "--", *cmd]
        full = [
            "nsenter",
            "-t",
            str(self.init_pid),
            "-m",
            "-u",
            "-i",
            "-n",
            "-p",
            "-C",
            "-r",
            "-w",
            "--",
            "env",
            "-i",
            *ENV,
            *cmd,
        ]
        r = subprocess.run(full, capture_output=True, text=True, timeout=timeout, check=False)
        if check and r.returncode != 0:
            raise ContainerError(
                f"`{script}` exited {r.returncode}\n--- stdout\n{r.stdout[-4000:]}"
                f"\n--- stderr\n{r.stderr[-4000:]}"
            )
        return r

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.sh(f"systemctl show {unit} -p {','.join(props)}").stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit: str, since_cursor: str | None = None) -> str:
        extra = f"--after-cursor='{since_cursor}'" if since_cursor else "-b"
        return self.sh(f"journalctl -u {unit} {extra} --no-pager -o short-precise").stdout

    def cursor(self) -> str:
        out = self.sh("journalctl -n 0 --show-cursor --no-pager").stdout
        return out.strip().rsplit("cursor: ", 1)[-1]

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        """Write a file into the running container's root (host side of the overlay)."""
        p = self.root / path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        p.chmod(mode)
