"""Where the HTTP listener and the ``adms`` drivers meet: one ``Channel`` per push terminal.

The listener's request threads put upload batches on a channel and wait; the terminal's
runner thread takes them through ``AdmsDriver.read()`` and commits them; the next ``read()``
acknowledges the batch, and only then does the waiting request answer ``OK:<n>`` (commit
before OK, PRODUCT.md §8). A batch not acknowledged in time (the runner is down, the store
refuses) is answered 503: the terminal keeps the records and sends them again after
``ErrorDelay`` (PUSH SDK: anything but ``OK`` means "not received").

Commands for the terminal queue here too and leave on its next ``getrequest`` poll.

The hub also keeps the small state that must outlive a restart, in
``<data_dir>/adms-state.json`` (written atomically, never fsync'd: losing it costs a
re-upload, which the deterministic ``event_id`` collapses): each terminal's last committed
``Stamp`` and the list of refused terminals (unknown SN, address outside
``allow_networks``) that ``gatewayctl terminals`` and ``doctor`` show.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drivers.adms.protocol import AttRecord, CommandResult, is_shell
from gateway.pipeline.punch import Punch

STATE_FILE = "adms-state.json"
MAX_UNKNOWN = 64  # a scan of the LAN must not grow the list without bound
MAX_QUEUED_BATCHES = 4  # a terminal sends one batch at a time; more is a misbehaving client
MAX_COMMANDS = 32
COMMANDS_PER_POLL = 8
MAX_PENDING = 256  # commands sent and not answered (a terminal that never answers)
QUERY_WINDOW_S = 600.0  # how long after a DATA QUERY was sent its re-send may still come


@dataclass
class Batch:
    """One upload, waiting for its commit. ``ok`` is read only after ``done`` is set."""

    punches: list[Punch]
    stamp: str | None = None
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False
    why: str = ""

    def finish(self, ok: bool, why: str = "") -> None:
        if not self.done.is_set():
            self.ok, self.why = ok, why
            self.done.set()


@dataclass
class Pending:
    command: str
    queued_at: float
    sent_at: float | None = None
    on_result: Callable[[CommandResult], None] | None = None


class Channel:
    """One push terminal as both sides see it. Thread-safe."""

    def __init__(self, hub: Hub, name: str, sn: str) -> None:
        self.hub = hub
        self.name = name
        self.sn = sn
        self._lock = threading.Lock()
        self._batches: queue.Queue[Batch] = queue.Queue(MAX_QUEUED_BATCHES)
        self._commands: list[tuple[int, str]] = []
        self._pending: dict[int, Pending] = {}
        self.attached = False
        self.address: str | None = None
        self.last_seen: float | None = None  # monotonic
        self.last_seen_at: datetime | None = None
        self.counters: dict[str, int] = {
            "uploads": 0,
            "records": 0,
            "bad_lines": 0,
            "other_records": 0,
            "bad_requests": 0,
            "refused_busy": 0,
            "unknown_tables": 0,
            "commands_sent": 0,
        }
        self.querying_until = 0.0  # monotonic: a DATA QUERY re-send may be under way
        self.info: dict[str, str] = {}  # firmware, counts: from INFO results and polls
        self.results: list[dict[str, Any]] = []  # the last few command results
        self.skew_s: float | None = None
        self.skew_at: datetime | None = None
        # Set by the terminal's driver (its options, zone and clock):
        self.delay_s = 10
        self.may_set_clock: Callable[[], bool] = lambda: False
        self.now: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.build: Callable[[list[AttRecord]], list[Punch]] = lambda _records: []

    # -- the listener's side -------------------------------------------------------------
    def seen(self, address: str) -> None:
        with self._lock:
            self.address = address
            self.last_seen = time.monotonic()
            self.last_seen_at = datetime.now(UTC)

    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counters[key] = self.counters.get(key, 0) + n

    def submit(self, batch: Batch) -> bool:
        """Queue a batch for the runner (which may be between two reconnects: the upload waits
        up to ``ack_timeout_s`` for it); False when too many wait already."""
        try:
            self._batches.put_nowait(batch)
        except queue.Full:
            self.count("refused_busy")
            return False
        return True

    def take_commands(self) -> list[tuple[int, str]]:
        with self._lock:
            out, self._commands = (
                self._commands[:COMMANDS_PER_POLL],
                self._commands[COMMANDS_PER_POLL:],
            )
            now = time.monotonic()
            for ident, cmd in out:
                if ident in self._pending:
                    self._pending[ident].sent_at = now
                if cmd.startswith("DATA QUERY"):
                    self.querying_until = now + QUERY_WINDOW_S
            self.counters["commands_sent"] += len(out)
            return out

    def command_results(self, results: list[CommandResult]) -> None:
        for r in results:
            with self._lock:
                pending = self._pending.pop(r.id, None)
                if pending is not None and pending.command.startswith("DATA QUERY"):
                    self.querying_until = 0.0
                self.results = [
                    *self.results[-9:],
                    {"id": r.id, "return": r.ret, "cmd": r.cmd, "at": _iso_now()},
                ]
            if pending is not None and pending.on_result is not None:
                pending.on_result(r)

    def learn(self, info: dict[str, str]) -> None:
        with self._lock:
            self.info.update({k: v[:120] for k, v in list(info.items())[:64]})

    # -- the driver's side ---------------------------------------------------------------
    def attach(self) -> None:
        self.attached = True

    def detach(self, why: str) -> None:
        """The runner stopped taking batches: every waiting upload is answered 503."""
        self.attached = False
        while True:
            try:
                self._batches.get_nowait().finish(False, why)
            except queue.Empty:
                return

    def next_batch(self, timeout: float) -> Batch | None:
        try:
            return self._batches.get(timeout=timeout)
        except queue.Empty:
            return None

    def queue_command(
        self, command: str, on_result: Callable[[CommandResult], None] | None = None
    ) -> int:
        if is_shell(command):  # notes field.md: SHELL runs anything on the terminal
            raise ValueError("the SHELL verb is never sent to a terminal")
        with self._lock:
            if len(self._commands) >= MAX_COMMANDS:
                raise ValueError(f"{len(self._commands)} commands already wait for the terminal")
            ident = next(self.hub.ids)
            self._commands.append((ident, command))
            if len(self._pending) >= MAX_PENDING:  # never answered: forget the oldest
                del self._pending[min(self._pending)]
            self._pending[ident] = Pending(command, time.monotonic(), on_result=on_result)
            return ident

    def querying(self) -> bool:
        """A ``DATA QUERY`` re-send is under way: its uploads carry stamps that are not the
        terminal's upload cursor, so they must not become our ``ATTLOGStamp``."""
        return time.monotonic() < self.querying_until

    def polled_ago(self) -> float | None:
        return None if self.last_seen is None else time.monotonic() - self.last_seen


class Hub:
    """Every push terminal of this process, by serial number, and the refused ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.channels: dict[str, Channel] = {}
        self.unknown: dict[str, dict[str, Any]] = {}
        self.stamps: dict[str, str] = {}
        self.ids = itertools.count(int(time.time()) % 1_000_000 * 100 + 1)
        self.state_path: Path | None = None
        self.listener_error: str | None = None  # the listener cannot bind its port

    def channel(self, name: str, sn: str) -> Channel:
        with self._lock:
            ch = self.channels.get(sn)
            if ch is None or ch.name != name:
                ch = self.channels[sn] = Channel(self, name, sn)
            return ch

    def find(self, sn: str) -> Channel | None:
        return self.channels.get(sn)

    # -- persisted state -------------------------------------------------------------------
    def load(self, data_dir: str | Path) -> None:
        self.state_path = Path(data_dir) / STATE_FILE
        state = read_state(Path(data_dir))
        with self._lock:
            self.stamps = {str(k): str(v) for k, v in state.get("stamps", {}).items()}
            self.unknown = {
                f"{u.get('serial_number')}@{u.get('address')}": u for u in state.get("unknown", [])
            }

    def stamp(self, sn: str) -> str:
        return self.stamps.get(sn, "0")

    def committed(self, sn: str, stamp: str | None) -> None:
        with self._lock:
            if not stamp or not stamp.isdigit() or self.stamps.get(sn) == stamp:
                return
            self.stamps[sn] = stamp
        self._save()

    def refused(self, sn: str | None, address: str, why: str) -> None:
        """Remember a knock we refused, for the technician (address, last seen, why)."""
        key = f"{sn}@{address}"
        now = _iso_now()
        with self._lock:
            entry = self.unknown.get(key)
            if entry is None:
                if len(self.unknown) >= MAX_UNKNOWN:
                    oldest = min(self.unknown, key=lambda k: self.unknown[k]["last_seen"])
                    del self.unknown[oldest]
                entry = self.unknown[key] = {
                    "serial_number": sn,
                    "address": address,
                    "first_seen": now,
                    "requests": 0,
                }
            entry.update(last_seen=now, why=why, requests=int(entry["requests"]) + 1)
            save = entry["requests"] == 1 or entry["requests"] % 100 == 0
        if save:  # the first knock and then every hundredth: a flood must not hammer the disk
            self._save()

    def _save(self) -> None:
        if self.state_path is None:
            return
        with self._lock:
            doc = {"stamps": dict(self.stamps), "unknown": list(self.unknown.values())}
        tmp = self.state_path.with_name(f".{STATE_FILE}.{threading.get_ident()}.tmp")
        try:
            tmp.write_text(json.dumps(doc, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.state_path)
        except OSError:  # disk full: only a re-upload or a late warning is at stake
            tmp.unlink(missing_ok=True)


def read_state(data_dir: Path) -> dict[str, Any]:
    """The persisted hub state (the CLI reads it with the daemon stopped); {} if none."""
    try:
        doc = json.loads((data_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


#: The process's hub: the daemon's listener and its ``adms`` drivers share it.
HUB = Hub()
