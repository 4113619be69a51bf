"""The demo's console: what to try, keys that break things, and the gateway noticing.

Issue 12 ("the demo invites a newcomer in"): after start the demo prints the exact commands
to run in another terminal, keeps that header visible (on a terminal, a scroll region keeps
it at the top while punches scroll below; otherwise a reminder line comes back every
``REMIND_S``), and reads letters from stdin that stop the broker, unplug the card reader or
silence the ZK terminal, and mend them with the same letter. A watcher asks the daemon for
its status every ``WATCH_S`` and prints a ``gateway`` line whenever what it knows changes
(broker, terminal states, faults), so the newcomer sees the gateway notice and recover.
"""

from __future__ import annotations

import shlex
import shutil
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

WATCH_S = 1.0
REMIND_S = 30.0


def rel(path: Path) -> str:
    """``path`` as typed from the current directory (``.demo/config.toml``) when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def gatewayctl() -> str:
    """The ``gatewayctl`` of this interpreter's environment (``.venv/bin/gatewayctl``)."""
    exe = Path(sys.executable).parent / "gatewayctl"
    return rel(exe) if exe.exists() else "gatewayctl"


class Intro:
    """The lines printed while starting (broker, terminals, daemon), kept for the header."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.lines.append(text)


class Console:
    """Header, keys and watcher of one demo run."""

    def __init__(
        self,
        *,
        config: Path,
        socket: Path,
        broker: Any,
        zk: Any = None,
        reader: Any = None,
        out: TextIO = sys.stdout,
    ) -> None:
        self.config = config
        self.socket = socket
        self.broker = broker
        self.zk = zk
        self.reader = reader
        self.out = out
        self.quit = threading.Event()
        self._zk_up = True
        self._lock = threading.Lock()
        self._tty = out.isatty()
        self._region = False
        self._last_seen: str | None = None
        self._threads: list[threading.Thread] = []

    # -- what to try -------------------------------------------------------------------------
    def commands(self) -> list[str]:
        ctl = f"{gatewayctl()} --config {rel(self.config)}"
        now = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%dT%H:%M")
        reason = shlex.quote("demo: fingerprint not read, confirmed by the supervisor")
        return [
            f"{ctl} status",
            f"{ctl} doctor",
            f"{ctl} terminals",
            f"{ctl} queue peek",
            f"{ctl} punch add --terminal virtual-1 --user 1001 --time {now} "
            f"--state check_in --reason {reason}",
            f"{ctl} terminal probe lobby",
        ]

    def keys(self) -> list[str]:
        return [
            "Break things here (a letter, then Enter; the same letter mends it):",
            "  b  stop / start the broker         the gateway keeps punches on disk, then "
            "drains the backlog",
            "  u  unplug / plug the card reader   side-door goes offline (fault 2), then back",
            "  s  silence / wake the ZK terminal  lobby goes offline (fault 1); its own log "
            "keeps the punches",
            "  h  show this again                 q  quit",
        ]

    def header(self, intro: list[str]) -> None:
        """What to try and the keys. On a terminal big enough, they are pinned at the top
        (the screen is cleared, the start-up lines follow below them and scroll away)."""
        lines = ["Try these in another terminal:"]
        lines += [f"  {c}" for c in self.commands()]
        lines += ["", *self.keys(), "-" * 40]
        cols, rows = shutil.get_terminal_size()
        tall = sum(max(1, -(-len(line) // max(cols, 1))) for line in lines)  # long lines wrap
        if self._tty and rows >= tall + 8:
            with self._lock:
                # clear, home, print the block, then scroll only below it (DECSTBM)
                self.out.write("\033[2J\033[H" + "\n".join(lines) + "\n")
                self.out.write(f"\033[{tall + 1};{rows}r\033[{rows};1H")
                self.out.flush()
                self._region = True
            self.say(*intro)
        else:
            self.say("", *lines)

    def release(self) -> None:
        if self._region:
            self.out.write("\033[r")  # the whole screen scrolls again
            self.out.flush()
            self._region = False

    def say(self, *lines: str) -> None:
        with self._lock:
            for line in lines:
                print(line, file=self.out, flush=True)

    # -- threads ---------------------------------------------------------------------------
    def start(self, stdin: TextIO = sys.stdin) -> None:
        for target, name, arg in (
            (self._keys_loop, "demo-keys", stdin),
            (self._watch_loop, "demo-watch", None),
        ):
            t = threading.Thread(target=target, args=(arg,), name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self.quit.set()
        for t in self._threads:
            if t.name == "demo-watch":
                t.join(timeout=5)  # the keys thread may sit in readline(): it is a daemon
        self.release()

    def _keys_loop(self, stdin: TextIO) -> None:
        actions: dict[str, Callable[[], None]] = {
            "b": self._toggle_broker,
            "u": self._toggle_reader,
            "s": self._toggle_zk,
            "h": lambda: self.say("", *self.keys(), ""),
            "q": self.quit.set,
        }
        try:
            for line in stdin:
                key = line.strip().lower()[:1]
                if key in actions:
                    try:
                        actions[key]()
                    except Exception as err:  # a demo toy must not end the demo
                        self.say(f"you        {key}: failed: {err}")
                elif key:
                    self.say("you        keys: b (broker), u (reader), s (ZK), h (help), q (quit)")
                if self.quit.is_set():
                    return
        except (OSError, ValueError):  # stdin closed under us
            return

    def _toggle_broker(self) -> None:
        if self.broker.is_running:
            self.broker.stop()
            self.say("you        broker stopped: the gateway keeps every punch on disk "
                     "(pending grows) and retries")  # fmt: skip
        else:
            self.broker.start()
            self.say("you        broker started again: the backlog drains, in order")

    def _toggle_reader(self) -> None:
        if self.reader is None:
            self.say("you        no serial reader simulator in this demo")
        elif self.reader.plugged:
            self.reader.unplug()
            self.say("you        card reader unplugged: side-door goes offline (fault 2)")
        else:
            self.reader.replug()
            self.say("you        card reader plugged back in: side-door reconnects by itself")

    def _toggle_zk(self) -> None:
        if self.zk is None:
            self.say("you        no ZK simulator in this demo")
        elif self._zk_up:
            self.zk.stop()
            self._zk_up = False
            self.say("you        ZK terminal silenced: lobby goes offline (fault 1); people "
                     "still punch, its log keeps them")  # fmt: skip
        else:
            self.zk.start()
            self._zk_up = True
            self.say("you        ZK terminal back: the gateway reconnects and pulls what it missed")

    def _watch_loop(self, _arg: object) -> None:
        from gateway.ops import control_client as control

        next_remind = time.monotonic() + REMIND_S
        while not self.quit.wait(WATCH_S):
            try:
                snap = control.call(self.socket, {"cmd": "status"}, timeout=5.0)
            except (control.DaemonUnreachable, control.RequestError, OSError):
                snap = None  # starting, stopping, or busy: ask again next time
            if not isinstance(snap, dict):
                continue
            seen, line = summary(snap)
            if seen != self._last_seen:
                self._last_seen = seen
                self.say(f"gateway    {line}")
            if not self._region and time.monotonic() >= next_remind:
                next_remind = time.monotonic() + REMIND_S
                self.say(f"demo       b/u/s + Enter break things, h help, q quit; try: "
                         f"{self.commands()[0]}")  # fmt: skip


def summary(snap: dict[str, Any]) -> tuple[str, str]:
    """(what change detection compares, the line to print) for a status snapshot."""
    from gateway.cli.local import describe_faults

    broker = "broker connected" if snap.get("broker", {}).get("connected") else "broker DOWN"
    terms = []
    for name, t in sorted(snap.get("terminals", {}).items()):
        state = str(t.get("state"))
        terms.append(f"{name} {state}" if state == "online" else f"{name} {state.upper()}")
    faults = describe_faults(list(snap.get("faults", [])))
    codes = sorted({int(f["code"]) for f in faults})
    seen = f"{broker}; {', '.join(terms)}; {codes}"
    shown = ", ".join(
        f"{c} ({next((f['meaning'] for f in faults if f['code'] == c and f.get('meaning')), '?')})"
        for c in codes
    )
    pending = snap.get("queue", {}).get("pending", "?")
    return seen, f"{broker}; {', '.join(terms)}; pending {pending}; LED faults {shown or 'none'}"


def link_reader(reader: Any, path: Path) -> None:
    """Give the pty reader a stable name (like udev's by-id) so replugging keeps its path."""
    if getattr(reader, "transport", None) != "pty":
        return
    reader.link = str(path)
    reader.unplug()
    reader.replug()
