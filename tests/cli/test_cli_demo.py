"""Issue 12: ``gatewayctl demo`` invites a newcomer in (the demo as a real process).

It prints the exact commands to try (and they work as printed, from the directory the demo
runs in), reminds of them while punches scroll, and reads letters on stdin that stop the
broker, unplug the card reader and silence the ZK terminal; the gateway is seen to notice
each and to recover when the same letter mends it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import threading
from pathlib import Path

from tests.pipeline.harness import wait_until


class Demo:
    def __init__(self, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "demo", "--rate", "2"],
            cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env={**os.environ, "NO_COLOR": "1"},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, name="test-demo-out", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def key(self, letter: str) -> int:
        assert self.proc.stdin is not None
        mark = len(self.lines)
        self.proc.stdin.write(letter + "\n")
        self.proc.stdin.flush()
        return mark

    def wait_line(self, pred, what: str, since: int = 0, timeout: float = 90) -> str:
        found: list[str] = []

        def seen() -> bool:
            found[:] = [ln for ln in self.lines[since:] if pred(ln)]
            return bool(found) or self.proc.poll() is not None

        wait_until(seen, timeout, what)
        assert found, f"{what}: the demo ended\n" + "\n".join(self.lines[-40:])
        return found[0]

    def gateway_says(self, text: str, since: int) -> str:
        return self.wait_line(lambda ln: ln.startswith("gateway") and text in ln,
                              f"a gateway line with {text!r}", since)


def run(cmd: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(shlex.split(cmd), cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NO_COLOR": "1"})


def test_demo_prints_commands_that_work_and_lets_you_break_things(tmp_path: Path) -> None:
    demo = Demo(tmp_path)
    try:
        demo.wait_line(lambda ln: ln.startswith("  q") or "q  quit" in ln, "the keys")
        cmds = [ln.strip() for ln in demo.lines if "--config .demo/config.toml" in ln]
        by_name = {c.split(".demo/config.toml ")[1].split()[0]: c for c in cmds}
        assert {"status", "doctor", "punch", "queue"} <= set(by_name), cmds
        assert any("stop / start the broker" in ln for ln in demo.lines)
        assert any("unplug / plug the card reader" in ln for ln in demo.lines)
        assert any("silence / wake the ZK terminal" in ln for ln in demo.lines)

        # The commands work exactly as printed: a healthy demo has status exit 0.
        wait_until(lambda: run(by_name["status"], tmp_path).returncode == 0, 90,
                   "status exit 0 on the healthy demo")
        doctor = run(by_name["doctor"], tmp_path)
        assert doctor.returncode in (0, 1) and "PASS  daemon" in doctor.stdout, doctor.stdout
        added = run(by_name["punch"], tmp_path)
        assert added.returncode == 0, added.stdout + added.stderr
        demo.gateway_says("side-door online", 0)

        for letter, broken, mended in (
            ("u", "side-door OFFLINE", "side-door online"),
            ("b", "broker DOWN", "broker connected"),
            ("s", "lobby OFFLINE", "lobby online"),
        ):
            demo.gateway_says(broken, demo.key(letter))
            demo.gateway_says(mended, demo.key(letter))

        # Not a terminal here: the reminder line keeps the commands in sight.
        demo.wait_line(lambda ln: ln.startswith("demo") and "b/u/s" in ln, "the reminder")
        mark = demo.key("q")
        demo.wait_line(lambda ln: "punches received" in ln, "the closing summary", mark)
        assert demo.proc.wait(60) == 0
    finally:
        if demo.proc.poll() is None:
            demo.proc.kill()
            demo.proc.wait(30)
        demo._reader.join(10)
