"""SD-card writes (issue 18): bytes the daemon sends to storage, idle and per punch.

Measured from ``/proc/<pid>/io`` ``write_bytes`` (what the process caused to be written to the
block layer: SQLite pages, WAL frames, checkpoints, backups), plus the bytes of log lines the
daemon printed (what journald receives under systemd; journald's own overhead comes on top).
The data directory is on the machine's disk, not a tmpfs (tmpfs writes count as nothing).

Scenarios, in one daemon run each:

* idle: 2 ZK simulators (live events, nobody punching) + 2 idle virtual terminals, health
  every 60 s, for ``--idle-s`` seconds, scaled to one hour. Measured after a restart: a
  first run ingests both logs and makes the store's first automatic backup, then the daemon
  is started again (what a Pi does after every reboot or upgrade);
* card swipes: a file-fed virtual terminal, one punch at a time, each waited for until
  committed, ``--pace-s`` apart (a queue at the door), then all waited for until delivered
  (commit + delivered mark + WAL checkpoints as they fall due); and ``--lone`` swipes
  ``--lone-pace-s`` apart (a quiet office: no next insert for the mark to ride on);
* live ZK events: one ``punch()`` at a time on a ZK simulator, each waited for;
* a ZK burst: ``--burst`` records loaded into the terminal, then ``terminal pull``.

Baseline in the same run: the punch's own JSON record (the bytes that must reach the card at
least once); the ratio is the write amplification.

    .venv/bin/python -m bench.sd_writes [--idle-s 120] [--swipes 40] [--burst 5000]
        [--pace-s 1] [--lone 8 --lone-pace-s 10]
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.common import broker, machine, table
from gateway.ops import control_client
from tests.pipeline.harness import GatewayProcess, wait_until, write_config, write_punch_file


def write_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/PID/io")


def _ro(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)


def delivered(db: Path) -> int:
    """Delivered punches (status 1), read through a read-only connection of our own."""
    if not db.exists():
        return 0
    try:
        with contextlib.closing(_ro(db)) as c:
            return int(c.execute("SELECT count(*) FROM punches WHERE status=1").fetchone()[0])
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0


def record_bytes(db: Path) -> float:
    """Mean size of the stored JSON records (the baseline: what must be written at least once)."""
    with contextlib.closing(_ro(db)) as c:
        rows = c.execute("SELECT length(record) FROM punches LIMIT 200").fetchall()
    return sum(r[0] for r in rows) / len(rows) if rows else 0.0


@contextlib.contextmanager
def daemon(tmp: Path, terminals: list[dict[str, Any]], port: int) -> Iterator[GatewayProcess]:
    cfg = write_config(
        tmp / "gw.toml",
        gateway={"data_dir": str(tmp / "data"), "health_interval_s": 60,
                 "control_socket": str(tmp / "c.sock")},
        mqtt={"host": "127.0.0.1", "port": port}, terminals=terminals,
    )
    with GatewayProcess(cfg, tmp / "gw.log") as gw:
        assert gw.proc is not None
        wait_until(lambda: (tmp / "c.sock").exists(), 60, "control socket")
        time.sleep(5)  # start-up writes (schema, first reconciliation) are not what we measure
        yield gw


def stored(db: Path) -> int:
    with contextlib.closing(_ro(db)) as c:
        return int(c.execute("SELECT count(*) FROM punches").fetchone()[0])


def per_event(gw: GatewayProcess, db: Path, n: int, fire: Callable[[int], None],
              log: Path, pace_s: float) -> tuple[float, float]:
    """Bytes written and logged per event: each committed, ``pace_s`` apart, then all
    waited for until delivered (the delivered mark may wait for the next insert, issue 18)."""
    assert gw.proc is not None
    w0, l0, d0, s0 = write_bytes(gw.proc.pid), log.stat().st_size, delivered(db), stored(db)
    for i in range(n):
        fire(i)
        wait_until(lambda i=i: stored(db) >= s0 + i + 1, 60, f"event {i} committed")
        time.sleep(pace_s)
    wait_until(lambda: delivered(db) >= d0 + n, 120, "events delivered")
    time.sleep(1.0)  # let the last delivered mark reach the WAL
    return ((write_bytes(gw.proc.pid) - w0) / n, (log.stat().st_size - l0) / n)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle-s", type=float, default=120.0)
    ap.add_argument("--swipes", type=int, default=40)
    ap.add_argument("--burst", type=int, default=5000)
    ap.add_argument("--pace-s", type=float, default=1.0)
    ap.add_argument("--lone", type=int, default=8)
    ap.add_argument("--lone-pace-s", type=float, default=10.0)
    args = ap.parse_args(argv)
    from drivers.zk_terminal.sim import ZkSimulator

    rows: list[list[object]] = []
    base = 0.0
    with broker() as b, contextlib.ExitStack() as stack:
        # -- idle ------------------------------------------------------------------------
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(dir="/var/tmp")))
        sims = [stack.enter_context(ZkSimulator(serial=f"SDW{i:09d}")) for i in range(2)]
        for s in sims:
            s.bulk_load(1000, users=200)
        terminals: list[dict[str, Any]] = [
            {"name": f"zk{i}", "driver": "zk", "host": "127.0.0.1", "port": s.port,
             "live": True, "poll_interval_s": 300} for i, s in enumerate(sims)
        ]
        feed = tmp / "swipes.jsonl"
        feed.touch()
        terminals += [{"name": "reader", "driver": "virtual", "file": str(feed)},
                      {"name": "virt1", "driver": "virtual"}]
        db = tmp / "data" / "gateway.db"
        log = tmp / "gw.log"
        with daemon(tmp, terminals, b.port) as gw:
            # the first run: both logs ingested and delivered, the first automatic backup
            wait_until(lambda: delivered(db) >= 2000, 300, "first reconciliation delivered")
            wait_until(lambda: any((tmp / "data" / "backups").glob("gateway-*.db")), 180,
                       "the first automatic backup")
            gw.terminate()
        with daemon(tmp, terminals, b.port) as gw:  # the restart we measure
            assert gw.proc is not None
            time.sleep(5)
            w0, l0, t0 = write_bytes(gw.proc.pid), log.stat().st_size, time.monotonic()
            time.sleep(args.idle_s)
            dt = time.monotonic() - t0
            idle_w = (write_bytes(gw.proc.pid) - w0) * 3600 / dt
            idle_l = (log.stat().st_size - l0) * 3600 / dt
            rows.append(["idle, 4 terminals, health 60 s (per hour)",
                         f"{idle_w / 1e6:.3f} MB", f"{idle_l / 1e6:.3f} MB", "-"])

            def swipe(i: int) -> None:
                write_punch_file(feed, 1, start=10_000 + i)

            w, lg = per_event(gw, db, args.swipes, swipe, log, args.pace_s)
            base = record_bytes(db)
            rows.append([f"card swipe, {args.pace_s:g} s apart (per punch)", f"{w / 1e3:.1f} KB",
                         f"{lg / 1e3:.2f} KB", f"{w / base:.0f}x" if base else "-"])

            def lone(i: int) -> None:
                write_punch_file(feed, 1, start=20_000 + i)

            w, lg = per_event(gw, db, args.lone, lone, log, args.lone_pace_s)
            rows.append([f"card swipe, {args.lone_pace_s:g} s apart (per punch)",
                         f"{w / 1e3:.1f} KB", f"{lg / 1e3:.2f} KB",
                         f"{w / base:.0f}x" if base else "-"])

            def live(i: int) -> None:
                sims[0].punch(str(1000 + i % 50))

            w, lg = per_event(gw, db, args.swipes, live, log, args.pace_s)
            rows.append(["live ZK event (per punch)", f"{w / 1e3:.1f} KB", f"{lg / 1e3:.2f} KB",
                         f"{w / base:.0f}x" if base else "-"])

            sims[1].bulk_load(args.burst, users=200)
            w0, l0, d0 = write_bytes(gw.proc.pid), log.stat().st_size, delivered(db)
            control_client.call(tmp / "c.sock", {"cmd": "pull", "terminal": "zk1"}, timeout=600)
            wait_until(lambda: delivered(db) >= d0 + args.burst, 600, "burst delivered")
            time.sleep(1.0)
            w = (write_bytes(gw.proc.pid) - w0) / args.burst
            lg = (log.stat().st_size - l0) / args.burst
            rows.append([f"ZK burst of {args.burst} (per punch)", f"{w / 1e3:.2f} KB",
                         f"{lg / 1e3:.3f} KB", f"{w / base:.1f}x" if base else "-"])
            gw.terminate()
    print(f"SD-card writes — {machine()}\n")
    print(f"baseline: one punch's JSON record = {base:.0f} bytes\n")
    print(table(["scenario", "written to disk", "logged (journald input)",
                 "amplification vs record"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
