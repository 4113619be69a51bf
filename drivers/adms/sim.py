"""``gatewayctl sim adms``: a push terminal (ZKTeco ADMS ``iclock`` client) for tests and demos.

It behaves like the terminals in the public captures and servers (notes ``field.md``):
handshake ``GET /iclock/cdata?options=all`` (and takes the server's ``ATTLOGStamp`` as its
upload cursor, ``0`` meaning "everything"), uploads in batches with ``&Stamp=`` and keeps a
batch until the answer is ``OK``, polls ``getrequest`` every ``Delay`` and runs
``DATA QUERY ATTLOG`` (re-send a window), ``VERIFY SUM ATTLOG``, ``INFO``, ``CHECK``,
``SET OPTION DateTime=``, ``REBOOT``; results go to ``devicecmd``. Like a real terminal it
sets its clock from the answers' ``Date`` header plus ``TimeZone`` (the trap of
saifulcoder/adms-server-ZKTeco#14), so tests can see whether the gateway ever moves it.
Faults on demand: a stamp reset, a dialect (``tab``, ``epoch``, ``kv``), bad lines.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import random
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

from drivers.adms import protocol as p


@dataclass(frozen=True)
class SimRecord:
    pin: str
    local: datetime
    status: int = 0
    verify: int = 15

    def line(self, dialect: str, zone: ZoneInfo) -> str:
        t = self.local.strftime("%Y-%m-%d %H:%M:%S")
        if dialect == "epoch":
            t = str(int(self.local.replace(tzinfo=zone).timestamp()))
        if dialect == "kv":
            return f"PIN={self.pin}\tDateTime={t}\tVerified={self.verify}\tStatus={self.status}"
        return f"{self.pin}\t{t}\t{self.status}\t{self.verify}\t0\t0\t0"


@dataclass
class SimTerminal:
    """One simulated push terminal; thread-safe for ``punch()`` while ``run()`` goes."""

    server: str  # "host:port"
    sn: str
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    dialect: str = "tab"
    batch_max: int = 500
    clock_offset_s: float = 0.0  # the terminal's clock minus true local time
    source: str | None = None  # source address to bind (e.g. 127.0.0.2)
    timeout_s: float = 30.0
    log: list[SimRecord] = field(default_factory=list)
    cursor: int = 0  # records before this index were acknowledged by the server
    delay_s: float = 10.0
    error_delay_s: float = 30.0
    timezone_h: int | None = None  # from the server's TimeZone option
    obeys_date: bool = True  # sets its clock from ``Date`` + ``TimeZone`` like most firmware
    handshaken: bool = False
    bad_lines: list[str] = field(default_factory=list)  # sent once with the next upload
    answers: list[tuple[str, int, str]] = field(default_factory=list)  # (what, status, body)
    clock_moves: list[tuple[str, float]] = field(default_factory=list)  # (why, seconds)
    commands_seen: list[str] = field(default_factory=list)
    uploads_ok: int = 0
    failures: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()

    # -- the terminal's own clock and log -----------------------------------------------
    def now_local(self) -> datetime:
        true_local = datetime.now(UTC).astimezone(self.zone).replace(tzinfo=None)
        return (true_local + timedelta(seconds=self.clock_offset_s)).replace(microsecond=0)

    def punch(
        self, pin: str, status: int = 0, verify: int = 15, at: datetime | None = None
    ) -> None:
        with self._lock:
            self.log.append(SimRecord(pin, at or self.now_local(), status, verify))

    def fill(self, n: int, start: datetime, users: int = 40) -> None:
        """``n`` past records one minute apart (a terminal with a history)."""
        with self._lock:
            for i in range(n):
                when = start + timedelta(minutes=i)
                self.log.append(SimRecord(str(1000 + i % users), when, i % 2, 15))

    def stamp_reset(self) -> None:
        """Firmware or a time change reset the cursor: everything goes again."""
        with self._lock:
            self.cursor = 0

    def reboot(self) -> None:
        self.handshaken = False

    # -- the wire ------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, str]:
        host, _, port = self.server.rpartition(":")
        conn = http.client.HTTPConnection(
            host,
            int(port),
            timeout=self.timeout_s,
            source_address=(self.source, 0) if self.source else None,
        )
        try:
            headers = {"User-Agent": "iClock Proxy/1.09", "Content-Type": "text/plain"}
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", "replace")
            self._maybe_set_clock(resp.getheader("Date"), path)
            return resp.status, text
        finally:
            conn.close()

    def _maybe_set_clock(self, date: str | None, path: str) -> None:
        """What real firmware does (PUSH SDK V2.0.1): time = ``Date`` + ``TimeZone``."""
        if not date or self.timezone_h is None or not self.obeys_date:
            return
        try:
            utc = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            return
        new_local = utc.replace(tzinfo=None) + timedelta(hours=self.timezone_h)
        true_local = datetime.now(UTC).astimezone(self.zone).replace(tzinfo=None)
        offset = (new_local - true_local).total_seconds()
        if abs(offset - self.clock_offset_s) >= 2.0:
            self.clock_moves.append((f"Date header on {path.split('?', maxsplit=1)[0]}", offset))
            self.clock_offset_s = offset

    def handshake(self) -> bool:
        status, text = self._request(
            "GET", f"/iclock/cdata?SN={self.sn}&options=all&pushver=2.4.1&language=69"
        )
        self.answers.append(("handshake", status, text[:200]))
        if status != 200 or not text.startswith("GET OPTION FROM"):
            return False
        opts = p.parse_kv_lines(text.encode())
        stamp = opts.get("ATTLOGStamp", "0")
        with self._lock:
            self.cursor = min(int(stamp), len(self.log)) if stamp.isdigit() else 0
        self.delay_s = float(opts.get("Delay", self.delay_s))
        self.error_delay_s = float(opts.get("ErrorDelay", self.error_delay_s))
        tz = opts.get("TimeZone")
        self.timezone_h = int(tz) if tz and tz.lstrip("-").isdigit() else None
        self.handshaken = True
        return True

    def upload(self, records: list[SimRecord] | None = None, advance: bool = True) -> bool | None:
        """One ``ATTLOG`` batch (the pending ones, or ``records``); None when nothing to send."""
        with self._lock:
            start = self.cursor
            batch = records if records is not None else self.log[start : start + self.batch_max]
            bad, self.bad_lines = self.bad_lines, []
        if not batch and not bad:
            return None
        stamp = start + len(batch) if records is None else start  # a re-send: cursor as is
        body = "\n".join([r.line(self.dialect, self.zone) for r in batch] + bad) + "\n"
        status, text = self._request(
            "POST", f"/iclock/cdata?SN={self.sn}&table=ATTLOG&Stamp={stamp}", body.encode()
        )
        self.answers.append(("upload", status, text[:200]))
        if status == 200 and text.startswith("OK"):
            self.uploads_ok += 1
            if advance and records is None:
                with self._lock:
                    self.cursor = max(self.cursor, stamp)
            return True
        with self._lock:  # kept: sent again after ErrorDelay
            self.bad_lines = bad + self.bad_lines if status >= 500 else self.bad_lines
        self.failures += 1
        return False

    def poll(self) -> None:
        status, text = self._request("GET", f"/iclock/getrequest?SN={self.sn}")
        self.answers.append(("poll", status, text[:200]))
        if status != 200:
            return
        results = [self._execute(ident, cmd) for ident, cmd in p.parse_commands(text.encode())]
        if results:
            body = "\n".join(results) + "\n"
            self._request("POST", f"/iclock/devicecmd?SN={self.sn}", body.encode())

    def _execute(self, ident: int, cmd: str) -> str:
        self.commands_seen.append(cmd)
        verb = cmd.split(" ", 1)[0].upper()
        ret, extra = 0, ""
        if cmd.startswith("DATA QUERY ATTLOG"):
            fields = p.parse_kv_lines(cmd[len("DATA QUERY ATTLOG") :].encode())
            lo, hi = fields.get("StartTime", ""), fields.get("EndTime", "9999")
            with self._lock:
                window = [r for r in self.log if lo <= r.local.strftime("%Y-%m-%d %H:%M:%S") <= hi]
            for i in range(0, len(window), self.batch_max):
                self.upload(window[i : i + self.batch_max], advance=False)
            ret = 0 if window else -1  # -1: "no data" (datasheet/ADMS.md, SpeedFace-V5L)
            cmd = "DATA"
        elif cmd == "VERIFY SUM ATTLOG":
            extra = f"&AttlogSum={len(self.log)}"
            cmd = "VERIFY SUM"
        elif cmd == "INFO":
            info = f"~DeviceName=SimFace\nFWVersion=SIM-1.0\nAttLogCount={len(self.log)}\n"
            self._request("POST", f"/iclock/cdata?SN={self.sn}&table=options", info.encode())
        elif cmd.startswith("SET OPTION DateTime="):
            value = cmd.split("=", 1)[1]
            target = p.decode_zk_time(int(value)) if value.isdigit() else None
            if target is not None:
                true_local = datetime.now(UTC).astimezone(self.zone).replace(tzinfo=None)
                self.clock_offset_s = (target - true_local).total_seconds()
                self.clock_moves.append(("SET OPTION DateTime", self.clock_offset_s))
            cmd = "SET OPTION"
        elif verb == "REBOOT":
            self.handshaken = False
        elif verb not in ("CHECK", "LOG"):
            ret = -1002  # unknown syntax, as real firmware answers
        return f"ID={ident}&Return={ret}&CMD={cmd}{extra}"

    def step(self) -> float:
        """One cycle; returns how long to wait before the next."""
        try:
            if not self.handshaken and not self.handshake():
                self.failures += 1
                return self.error_delay_s
            while (ok := self.upload()) is True:
                pass
            if ok is False:
                return self.error_delay_s
            self.poll()
            return self.delay_s
        except (OSError, http.client.HTTPException, ValueError):
            self.failures += 1
            self.handshaken = False  # a server that went away: start over
            return self.error_delay_s

    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or self._stop
        while not stop.is_set():
            stop.wait(min(self.step(), 60.0))

    def stop(self) -> None:
        self._stop.set()

    def pending(self) -> int:
        with self._lock:
            return len(self.log) - self.cursor


@contextlib.contextmanager
def demo_simulator(rate: float = 0.5, tz: str = "Asia/Shanghai") -> Iterator[SimTerminal]:
    """``gatewayctl demo``'s push terminal: it knocks on a free loopback port (the demo's
    ``[adms] listen``) every 2 s until the daemon answers, then uploads punches made at
    ``rate``/s on a named thread. ``tz`` matches the demo config's ``[gateway] timezone``."""
    with socket.socket() as probe:  # a port that was free a moment ago (mosquitto does too)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sim = SimTerminal(f"127.0.0.1:{port}", "DEMO0000ADMS1", ZoneInfo(tz), delay_s=2.0,
                      error_delay_s=2.0)  # fmt: skip
    sim.fill(50, sim.now_local() - timedelta(hours=1), users=20)
    stop = threading.Event()

    def punches() -> None:
        n = 0
        while not stop.wait(1.0 / rate if rate > 0 else 3600):
            sim.punch(str(2001 + n % 20), status=n % 2)
            n += 1

    threads = [
        threading.Thread(target=sim.run, args=(stop,), name="sim-adms-demo", daemon=True),
        threading.Thread(target=punches, name="sim-adms-demo-punches", daemon=True),
    ]
    for th in threads:
        th.start()
    try:
        yield sim
    finally:
        stop.set()
        for th in threads:
            th.join(timeout=5)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="gatewayctl sim adms", description=__doc__.split("\n")[0])
    ap.add_argument("--server", default="127.0.0.1:8081", help="the gateway's host:port")
    ap.add_argument("--sn", default="SIM0000000001", help="the terminal's serial number")
    ap.add_argument("--count", type=int, default=1, help="N terminals: SNs <sn>-1 .. <sn>-N")
    ap.add_argument("--timezone", default="UTC", help="the terminal's zone (its local time)")
    ap.add_argument("--dialect", choices=("tab", "epoch", "kv"), default="tab")
    ap.add_argument("--records", type=int, default=0, help="past records in the log at start")
    ap.add_argument("--batch", type=int, default=500, help="records per upload")
    ap.add_argument("--rate", type=float, default=6.0, help="new punches per minute (in all)")
    ap.add_argument("--clock-offset", type=float, default=0.0, help="clock error in seconds")
    ap.add_argument("--bad-every", type=int, default=0, help="a bad line every N punches")
    ap.add_argument("--source", default=None, help="source address to bind")
    ap.add_argument("--duration", type=float, default=0.0, help="stop after S seconds (0: never)")
    ap.add_argument("--start", default=None, help="time of the first past record (local)")
    ap.add_argument("--wait-stdin", action="store_true", help=argparse.SUPPRESS)  # benchmarks
    ap.add_argument("--exit-when-sent", action="store_true",
                    help="stop once every record was acknowledged (benchmarks)")  # fmt: skip
    a = ap.parse_args(argv)
    zone = ZoneInfo(a.timezone)
    sns = [a.sn] if a.count <= 1 else [f"{a.sn}-{i}" for i in range(1, a.count + 1)]
    sims = [SimTerminal(a.server, sn, zone, a.dialect, a.batch, clock_offset_s=a.clock_offset,
                        source=a.source) for sn in sns]  # fmt: skip
    stop = threading.Event()
    for t in sims:
        if a.records:
            first = datetime.fromisoformat(a.start) if a.start else None
            t.fill(a.records, first or t.now_local() - timedelta(minutes=a.records))
    if a.wait_stdin:  # a benchmark times the upload, not the interpreter's start
        print("ready", flush=True)
        sys.stdin.readline()
    for t in sims:
        threading.Thread(target=t.run, args=(stop,), name=f"sim-adms:{t.sn}", daemon=True).start()
    print(f"{len(sims)} push terminal(s) → http://{a.server}/iclock/ (Ctrl-C to stop)", flush=True)
    end = time.monotonic() + a.duration if a.duration > 0 else None
    made = 0
    try:
        while end is None or time.monotonic() < end:
            if a.exit_when_sent and all(t.pending() == 0 for t in sims):
                print("sent", flush=True)
                break
            time.sleep(random.expovariate(a.rate / 60.0) if a.rate > 0 else 0.2)
            if a.rate <= 0:
                continue
            made += 1
            t = random.choice(sims)
            t.punch(str(1000 + random.randrange(40)), random.choice((0, 1)))
            if a.bad_every and made % a.bad_every == 0:
                t.bad_lines.append("not\ta punch")
            print(f"punches {sum(len(x.log) for x in sims)}, waiting "
                  f"{sum(x.pending() for x in sims)}, failures {sum(x.failures for x in sims)}",
                  flush=True)  # fmt: skip
    except KeyboardInterrupt:
        pass
    stop.set()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
