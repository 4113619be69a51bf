"""ZK light touch: what the gateway costs a terminal per hour, before and after issue 14.

Run: ``.venv/bin/python bench/zk_touch.py [--records 100000] [--per-hour 300] [--poll-s 300]``

One simulated terminal (in this process, real TCP, device framing) holds ``--records``
40-byte records; users punch ``--per-hour`` times an hour; the driver polls every
``--poll-s`` seconds. One hour is played as its polls, back to back (12 polls of 25 punches
for the defaults), four times, on the same log:

a. live events on, before (baseline): a full log download at every poll (what the driver
   did before issue 14; the committed-prefix skip only saves re-handing records out);
b. live events on, after: the free-sizes check at every poll; the count changed, so only the
   new records are read (tail read), plus the 6-hour whole download counted as 1/6;
c. live events off (or a firmware with one session), before: a full download every poll;
d. live events off, after: every poll finds new records, and reads only them (tail read:
   the log's head, the last committed record, the new ones), plus the 6-hour whole download.

With live events, the link's keepalives (one ``get_time`` every 30 s: 120 an hour) count too;
without, the same keepalives run on the command session. Figures:
bytes the terminal sent, and the time it was busy answering (the simulator's time from a
command's arrival to its last reply byte written, on this machine; a real terminal's CPU and
link are far slower, the ratio is what carries over).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine, table
from drivers.zk_terminal.driver import ZkDriver
from drivers.zk_terminal.options import ZkOptions
from drivers.zk_terminal.sim import ZkSimulator
from gateway.pipeline.driver import DriverContext

TZ = ZoneInfo("Asia/Shanghai")
SAFETY_S = 6 * 3600.0
KEEPALIVES_PER_HOUR = 120


def _drain(d: ZkDriver) -> int:
    n = 0
    while batch := d.read(0.0):
        n += len(batch)
    return n


def _hour(sim: ZkSimulator, d: ZkDriver, polls: int, per_poll: int, users: int) -> None:
    k = 0
    for _ in range(polls):
        got = 0
        for _ in range(per_poll):
            sim.punch(str(1001 + k % users), state=k % 2)
            k += 1
        deadline = time.monotonic() + 60
        while d.opts.live and got < per_poll and time.monotonic() < deadline:  # live events
            got += len(d.read(0.2))
        d._next_poll = 0.0  # the poll, now instead of in --poll-s seconds
        got += _drain(d)
        if got < per_poll:
            raise SystemExit(f"only {got} of {per_poll} punches arrived")
    for _ in range(KEEPALIVES_PER_HOUR):
        d._keepalive()


def _measure(sim: ZkSimulator, fn: object) -> tuple[int, float]:
    b0, t0 = sim._server.bytes_sent, sim._server.busy_s
    fn()  # type: ignore[operator]
    return sim._server.bytes_sent - b0, sim._server.busy_s - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--per-hour", type=int, default=300)
    ap.add_argument("--poll-s", type=float, default=300.0)
    args = ap.parse_args()
    polls = max(1, round(3600 / args.poll_s))
    per_poll = max(1, args.per_hour // polls)
    users = 2 * args.per_hour  # no user punches twice in the compressed hour (same second)
    sim = ZkSimulator(serial="TOUCH000001", tz=TZ, capacity=args.records * 2).start()
    sim.bulk_load(args.records, users=users)
    rows: list[list[object]] = []
    try:
        results = []
        for label, live, after in (
            ("a. live on, before: full download every poll", True, False),
            ("b. live on, after: count check, tail reads", True, True),
            ("c. live off, before: full download every poll", False, False),
            ("d. live off, after: tail reads", False, True),
        ):
            interval = SAFETY_S if after else 0.0
            opts = ZkOptions("127.0.0.1", sim.port, poll_interval_s=args.poll_s, live=live,
                             timeout_s=30, full_download_interval_s=interval)
            d = ZkDriver("bench", opts, DriverContext("bench-gw", TZ))
            d.open()
            d._tail_reads = after  # before issue 14 every download was a whole one
            _drain(d)
            before_dl = d._touch.downloads
            b, t = _measure(sim, lambda d=d: _hour(sim, d, polls, per_poll, users))
            downloads = d._touch.downloads - before_dl
            if after:
                def safety(d: ZkDriver = d) -> None:
                    d._touch.last_full = -1e12  # the safety period is over: next poll downloads
                    d._next_poll = 0.0
                    _drain(d)
                sb, st = _measure(sim, safety)
                share = 3600.0 / SAFETY_S
                b, t = b + round(sb * share), t + st * share
                downloads_s = f"{downloads} + 1/{round(1 / share)} safety"
            else:
                downloads_s = str(downloads)
            d.close()
            results.append((b, t))
            rows.append([label, downloads_s, b / 1e6, t])
        for i in (0, 2):
            (ba, ta), (bb, tb) = results[i], results[i + 1]
            rows[i] += [1.0, 1.0]
            rows[i + 1] += [ba / bb, ta / tb]
    finally:
        sim.stop()
    print(f"ZK light touch, {args.records} records, {args.per_hour} punches/h, poll every "
          f"{args.poll_s:g} s ({polls} polls/h); {machine()}")
    for r in rows:
        r[2] = f"{r[2]:.2f}"
        r[3] = f"{r[3]:.2f}"
        r[4] = f"{r[4]:.0f}x" if isinstance(r[4], float) and r[4] >= 10 else f"{r[4]:.1f}x"
        r[5] = f"{r[5]:.0f}x" if isinstance(r[5], float) and r[5] >= 10 else f"{r[5]:.1f}x"
    print(table(["per hour", "downloads", "MB sent by terminal", "terminal busy s",
                 "bytes before/after", "busy before/after"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
