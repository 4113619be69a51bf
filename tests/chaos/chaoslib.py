"""The chaos rig: the real daemon process fed by three real terminals, and a ledger of what
they produced, so a scenario can say exactly what was produced, delivered, lost, duplicated.

* a ZK terminal simulator (``ZkSimulator``, real 4370 protocol over TCP, in this process);
* a serial card reader (``ReaderSim`` on a real pty; every swipe a unique card);
* a ``virtual`` terminal reading a JSON-lines file (a terminal log the test appends to).
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from drivers.serial_reader.sim import ReaderSim
from drivers.zk_terminal.sim import ZkSimulator
from tests.pipeline.harness import GatewayProcess, write_config, write_punch_file

TZ = ZoneInfo("Asia/Shanghai")
PREFIX = "attendance/gw-test"


@dataclass
class Figures:
    produced: int
    delivered: int
    lost: int
    duplicates: int
    by_terminal: dict[str, dict[str, int]] = field(default_factory=dict)


class Rig:
    """Terminals + config for one gateway whose data dir survives restarts."""

    def __init__(self, tmp: Path, broker_port: int, *, zk_records: int = 300,
                 file_lines: int = 300, serial: bool = True, mqtt: dict[str, Any] | None = None,
                 store: dict[str, Any] | None = None, data_dir: Path | None = None,
                 seed: int = 7) -> None:
        self.tmp = tmp
        self.rng = random.Random(seed)
        self.zk = ZkSimulator(tz=TZ, serial="CHAOS0000001").start()
        if zk_records:
            self.zk.bulk_load(zk_records, users=40)
        self.bad_zk = 0  # records deliberately corrupted (reported, never delivered)
        self.log = tmp / "terminal-log.jsonl"
        self.file_ids = write_punch_file(self.log, file_lines) if file_lines else []
        self.reader = ReaderSim("em4100", seed=seed) if serial else None
        if self.reader is not None:
            self.reader.start()
        self.cards: list[str] = []
        self._card_n = 0
        self._zk_n = 0
        self._backlogs = 0
        self.card_times: list[float] = []
        self._lock = threading.Lock()
        self.data_dir = data_dir or tmp / "data"
        self.db = self.data_dir / "gateway.db"
        terminals: list[dict[str, Any]] = [
            {"name": "lobby", "driver": "zk", "host": "127.0.0.1", "port": self.zk.port,
             "poll_interval_s": 5, "timeout_s": 3, "sync_clock": False},
            {"name": "file", "driver": "virtual", "file": str(self.log), "serial": "FILE1"},
        ]
        if self.reader is not None:
            terminals.append({"name": "door", "driver": "serial", "port": self.reader.path,
                              "framing": "em4100", "debounce_s": 0})
        self.config = write_config(
            tmp / "gw.toml",
            gateway={"data_dir": str(self.data_dir), "control_socket": str(tmp / "gw.sock"),
                     "health_interval_s": 1},
            mqtt={"host": "127.0.0.1", "port": broker_port, **(mqtt or {})},
            terminals=terminals, store=store,
        )
        self.runs = 0
        self.processes: list[GatewayProcess] = []
        self._producer: threading.Thread | None = None
        self._stop = threading.Event()

    # -- the daemon ------------------------------------------------------------------------
    def gateway(self, env: dict[str, str] | None = None, *, ready: bool = False) -> GatewayProcess:
        """Start the daemon; ``ready``: wait until it has the serial port open (a swipe before
        that is lost on a real Pi too: a closed tty discards what a reader sends)."""
        self.runs += 1
        gw = GatewayProcess(self.config, self.tmp / f"gw-{self.runs}.log", env).start()
        self.processes.append(gw)
        if ready and self.reader is not None:
            wait_until(lambda: "serial port open" in gw.log(), 60, "the serial port open")
        return gw

    # -- producing punches -------------------------------------------------------------
    def punch_once(self) -> None:
        """One punch on each terminal (ZK live + log, a new file line, a unique card)."""
        with self._lock:
            # A ZK event id is serial+user+second+state (two identical punches in one second
            # are one punch), so the live users cycle: no two punches of a second collide.
            self._zk_n += 1
            self.zk.punch(str(2001 + self._zk_n % 50), state=self._zk_n % 2)
            self.file_ids += write_punch_file(self.log, 1, start=len(self.file_ids))
            if self.reader is not None:
                self._card_n += 1
                # EM4100: 5 bytes; the user_id is the low 32 bits in decimal (cards.py).
                self.cards.append(str(self._card_n))
                self.card_times.append(time.monotonic())
                self.reader.swipe(f"{0x0200000000 + self._card_n:010X}")

    def add_backlog(self, zk_records: int, file_lines: int) -> None:
        """Records that piled up in the terminals' logs (e.g. while the gateway was down)."""
        with self._lock:
            self._backlogs += 1
            if zk_records:  # users of their own: no event-id collision with other records
                self.zk.bulk_load(zk_records, users=40, first_user=10_000 + 100 * self._backlogs)
            if file_lines:
                self.file_ids += write_punch_file(self.log, file_lines, start=len(self.file_ids))

    def start_producing(self, every_s: float = 0.1) -> None:
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(every_s * self.rng.uniform(0.5, 1.5)):
                self.punch_once()

        self._producer = threading.Thread(target=loop, name="chaos-producer", daemon=True)
        self._producer.start()

    def stop_producing(self) -> None:
        self._stop.set()
        if self._producer is not None:
            self._producer.join(10)

    def close(self) -> None:
        """Stop producing, kill any daemon still running (a failed test must not leak one)."""
        for gw in self.processes:
            if gw.running():
                gw.kill()
        self.stop_producing()
        self.zk.stop()
        if self.reader is not None:
            self.reader.close()

    # -- the ledger ----------------------------------------------------------------------
    def zk_expected(self) -> int:
        return self.zk.records - self.bad_zk

    def committed(self) -> list[tuple[str, str, str]]:
        """``(event_id, terminal, user_id)`` of every row in the store."""
        if not self.db.exists():
            return []
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as c:
            return c.execute(
                "SELECT event_id, terminal, json_extract(record, '$.user_id') FROM punches"
            ).fetchall()

    def integrity(self) -> list[str]:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as c:
            return [r[0] for r in c.execute("PRAGMA integrity_check")]

    def all_delivered(self, punches: list[dict[str, Any]], *, cards: bool = True) -> bool:
        """Everything produced arrived (``cards=False``: the swipes a kill may have eaten
        between decode and commit are not waited for; committed ones always are)."""
        by = _by_terminal(punches)
        got_cards = {p["user_id"] for p in by.get("door", {}).values()}
        return (
            len(by.get("lobby", {})) >= self.zk_expected()
            and (not cards or set(self.cards) <= got_cards)
            and set(self.file_ids) <= set(by.get("file", {}))
            and {e for e, t, _ in self.committed()} <= {p["event_id"] for p in punches}
        )

    def figures(self, punches: list[dict[str, Any]]) -> Figures:
        """Produced, delivered, lost, duplicates; asserts the no-loss invariants."""
        by = _by_terminal(punches)
        committed = self.committed()
        ids = {p["event_id"] for p in punches}
        lost_committed = [e for e, _, _ in committed if e not in ids]
        assert not lost_committed, f"committed but never delivered: {lost_committed[:10]}"
        # Duplicates only ever carry the same event_id: one id, one record.
        seen: dict[str, Any] = {}
        for p in punches:
            key = (p["terminal"], p["user_id"], p["time"], p.get("state_code"))
            if p["terminal"] != "door":
                assert seen.setdefault(p["event_id"], key) == key, p
        zk_ids = by.get("lobby", {})
        assert len(zk_ids) == self.zk_expected(), (
            f"ZK: {len(zk_ids)} distinct ids for {self.zk_expected()} good records"
        )
        file_ids = set(by.get("file", {}))
        missing_file = set(self.file_ids) - file_ids
        assert not missing_file, f"file terminal lost {sorted(missing_file)[:10]}"
        assert file_ids <= set(self.file_ids), "phantom file punches"
        cards_delivered = [p["user_id"] for p in by.get("door", {}).values()]
        assert set(cards_delivered) <= set(self.cards), "phantom card"
        assert len(cards_delivered) == len(set(cards_delivered)), "one swipe, two event ids"
        per = {
            "zk": {"produced": self.zk_expected(), "delivered": len(zk_ids)},
            "file": {"produced": len(self.file_ids), "delivered": len(file_ids)},
            "serial": {"produced": len(self.cards), "delivered": len(cards_delivered)},
        }
        produced = sum(v["produced"] for v in per.values())
        delivered = sum(v["delivered"] for v in per.values())
        return Figures(produced, delivered, produced - delivered, len(punches) - len(ids), per)


def swipes_lost_while_open(rig: Rig, punches: list[dict[str, Any]],
                           windows: list[tuple[float, float]], settle_s: float = 4.0) -> int:
    """Swipes made while the daemon surely had the port open (``settle_s`` after its start,
    until 0.2 s before its kill) that never arrived: what a kill cost between decode and
    commit. Swipes while the daemon was down or starting are not counted: a reader keeps no
    log and a closed tty discards them, on a real Pi as here."""
    got = {p["user_id"] for p in punches if p["terminal"] == "door"}
    return sum(
        1
        for card, t in zip(rig.cards, rig.card_times, strict=True)
        if card not in got and any(a + settle_s <= t <= b - 0.2 for a, b in windows)
    )


def _by_terminal(punches: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for p in punches:
        out.setdefault(p["terminal"], {})[p["event_id"]] = p
    return out


def health(sub: Any) -> dict[str, Any]:
    m = sub.retained(f"{PREFIX}/health")
    return json.loads(m.payload) if m else {"faults": []}


def wait_until(pred: Any, timeout: float, what: str, step: float = 0.2) -> float:
    """Wait for ``pred``; return the seconds it took (a figure, never asserted tightly)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
