"""The ``virtual`` driver: an in-process terminal for tests, demos and bench checks.

Fed two ways, both real paths through the runner and the store:

* **by code**: ``VirtualDriver.feed(name, user_id, ...)`` puts a punch on the named terminal's
  in-process queue (thread-safe; works before the driver exists);
* **by a file** (``file = "punches.jsonl"``): one JSON object per line
  (``{"user_id": "1001", "time": "2026-11-23T08:59:12", "state": 0}``). The file behaves like a
  terminal's own log: it is re-read in full on every open (reconciliation), with a
  deterministic ``event_id`` per line, then tailed. A kill -9 loses nothing: the next open
  reads it all again and the store ignores what it already has.

``rate`` generates punches by itself (for ``make demo``); ``fail_open`` and ``hang_file`` make it
an unreachable or a wedged terminal, for tests of the runner's backoff and the watchdog.
"""

from __future__ import annotations

import json
import queue
import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from gateway.config.validate import Fields
from gateway.errors import DriverError
from gateway.pipeline.driver import JSON, Diagnosis, DriverContext, diagnose_by_opening
from gateway.pipeline.ids import uuid7
from gateway.pipeline.punch import Punch, state_name, verify_name

MAX_BATCH = 5000


@dataclass(frozen=True)
class VirtualOptions:
    file: str | None = None
    rate: float = 0.0
    serial: str = "VIRTUAL"
    keeps_log: bool = True
    fail_open: bool = False  # refuse to open (a terminal that is unreachable)
    hang_file: str | None = None  # while this file exists, read() hangs (a wedged driver)


class VirtualDriver:
    """An in-process terminal."""

    kind = "virtual"
    _queues: ClassVar[dict[str, queue.SimpleQueue[dict[str, Any]]]] = {}
    _qlock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, name: str, options: VirtualOptions, ctx: DriverContext) -> None:
        self.name = name
        self.options = options
        self.ctx = ctx
        self.keeps_log = options.keeps_log
        self._open = False
        self._offset = 0
        self._line = 0
        self._next_gen = 0.0
        self._generated = 0
        self._reads = 0

    @staticmethod
    def parse_options(fields: Fields) -> VirtualOptions | None:
        opts = VirtualOptions(
            file=fields.str("file", None),
            rate=fields.number("rate", 0.0, min=0, max=10000),
            serial=fields.str("serial", "VIRTUAL"),
            keeps_log=fields.bool("keeps_log", True),
            fail_open=fields.bool("fail_open", False),
            hang_file=fields.str("hang_file", None),
        )
        return opts if fields.ok else None

    # -- feeding by code -----------------------------------------------------------------
    @classmethod
    def _queue(cls, name: str) -> queue.SimpleQueue[dict[str, Any]]:
        with cls._qlock:
            return cls._queues.setdefault(name, queue.SimpleQueue())

    @classmethod
    def feed(
        cls,
        terminal: str,
        user_id: str,
        *,
        time: datetime | None = None,
        state: int = 0,
        verify: int = 1,
        event_id: str | None = None,
    ) -> None:
        """Make ``terminal`` report a punch (as if someone used it)."""
        cls._queue(terminal).put(
            {
                "user_id": user_id,
                "time": time,
                "state": state,
                "verify": verify,
                "event_id": event_id,
            }
        )

    # -- the driver contract -------------------------------------------------------------
    def open(self) -> None:
        if self.options.fail_open:
            raise DriverError(f"virtual terminal {self.name} is configured unreachable", fault=1)
        self._open = True
        self._offset = 0  # re-read the whole file: reconciliation
        self._line = 0
        self._next_gen = self.ctx.clock.monotonic()

    def read(self, timeout: float) -> Sequence[Punch]:
        if not self._open:
            raise DriverError("not open")
        while self.options.hang_file and Path(self.options.hang_file).exists():
            time.sleep(0.2)  # deliberately wedged: no progress, no timeout honoured
        out: list[Punch] = []
        if self.options.file:
            out += self._read_file()
        if self.options.rate > 0:
            out += self._generate()
        q = self._queue(self.name)
        try:
            item = q.get(timeout=timeout if not out else 0.0)
            out.append(self._punch(item))
            while len(out) < MAX_BATCH:
                out.append(self._punch(q.get_nowait()))
        except queue.Empty:
            pass
        return out

    def close(self) -> None:
        self._open = False

    def probe(self) -> Mapping[str, JSON]:
        return {
            "driver": "virtual",
            "serial": self.options.serial,
            "file": self.options.file,
            "lines_read": self._line,
            "generated": self._generated,
        }

    def status(self) -> Mapping[str, JSON]:
        return {"serial": self.options.serial, "lines_read": self._line}

    def diagnose(self) -> Diagnosis:
        return diagnose_by_opening(self)

    def advice(self) -> str:
        return f"see the detail; `gatewayctl terminal probe {self.name}`"

    # -- helpers -------------------------------------------------------------------------
    def _read_file(self) -> list[Punch]:
        path = Path(self.options.file or "")
        try:
            with path.open("rb") as fh:
                fh.seek(self._offset)
                out: list[Punch] = []
                while len(out) < MAX_BATCH:
                    raw = fh.readline()
                    if not raw.endswith(b"\n"):
                        break  # a line still being written: read it whole next time
                    self._offset += len(raw)
                    self._line += 1
                    if raw.strip():
                        out.append(self._from_line(raw, self._line))
                return out
        except FileNotFoundError:
            return []
        except OSError as err:
            raise DriverError(f"cannot read {path}: {err}", fault=1) from err

    def _from_line(self, raw: bytes, lineno: int) -> Punch:
        try:
            item = json.loads(raw)
        except ValueError:
            item = {"user_id": "?", "bad_line": raw[:200].decode("utf-8", "replace")}
        item.setdefault("event_id", f"virtual-{self.options.serial}-{lineno}")
        return self._punch(item)

    def _generate(self) -> list[Punch]:
        now = self.ctx.clock.monotonic()
        out: list[Punch] = []
        while self._next_gen <= now and len(out) < MAX_BATCH:
            self._next_gen += random.expovariate(self.options.rate)
            self._generated += 1
            out.append(
                self._punch(
                    {
                        "user_id": str(1000 + random.randrange(40)),
                        "state": random.choice((0, 1)),
                        "verify": 1,
                    }
                )
            )
        return out

    def _punch(self, item: Mapping[str, Any]) -> Punch:
        t = item.get("time")
        when = (
            self.ctx.clock.now()
            if t is None
            else (datetime.fromisoformat(t) if isinstance(t, str) else t)
        )
        if when.tzinfo is None:
            when = when.replace(tzinfo=self.ctx.timezone)  # device-local naive time
        state = item.get("state", 0)
        verify = item.get("verify", 1)
        extra = {
            k: v
            for k, v in item.items()
            if k not in {"user_id", "time", "state", "verify", "event_id"}
        }
        return Punch(
            event_id=item.get("event_id") or f"virtual-{uuid7()}",
            terminal=self.name,
            driver=self.kind,
            user_id=str(item.get("user_id", "?")),
            time=when.astimezone(self.ctx.timezone),
            state=state_name(state),
            state_code=state,
            verify=verify_name(verify),
            verify_code=verify,
            terminal_sn=self.options.serial,
            clock_synced=self.ctx.clock_synced(),
            extra=extra,
        )
