"""Reconnect storm through a restricted cloud profile (issue 19).

A fleet of gateways (in one process: a publisher and a store each) is connected to one broker
with a backlog each; the broker is killed (-9), every store gets more punches, the broker
returns. Measured: the time until every gateway has drained everything, and the connections
each gateway made (1 = no reconnect loop). The restricted run is ``huawei-iotda`` (MQTT 3.1.1,
no will, no retain, signed login per device) against a Mosquitto set up like the platform
(``retain_available false``, ``max_qos 1``, 1 MB, an ACL per device); the baseline in the same
run is ``generic`` MQTT 5 against a plain Mosquitto.

    .venv/bin/python -m bench.cloud_storm --gateways 20 --backlog 2000

Issue 18, a fleet: ``--gateways 200 --jitter`` adds a run of the generic profile with the
reconnect jitter switched off (every gateway retries after exactly 1 s) and reports, per
run, what the broker sees after its restart: connects per second (peak, from its log), the
seconds until every gateway is connected and until every backlog is drained, the broker's
CPU seconds over the storm, and the memory each gateway adds (resident set of this process,
whose gateways are a publisher and a store each; a whole daemon is ``bench.memory``).

    .venv/bin/python -m bench.cloud_storm --gateways 200 --backlog 500 --jitter
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import machine, punches, table
from gateway.config import MqttSection
from gateway.devkit.broker import MosquittoBroker
from gateway.store.db import Store
from gateway.uplink import profiles
from gateway.uplink.profiles import ProfileOptions, signing
from gateway.uplink.publisher import Publisher

SECRET = "bench-device-secret"  # test data, not a secret


def _fleet(restricted: bool, n: int, root: Path) -> tuple[MosquittoBroker, list[Publisher]]:
    now = time.time()
    users: dict[str, str] = {}
    acl: list[str] = []
    sections: list[tuple[MqttSection, profiles.Profile | None]] = []
    for i in range(n):
        gw = f"gw{i:03d}"
        if restricted:
            dev = f"pid_{gw}"
            users[dev] = signing.huawei_password(SECRET, signing.huawei_timestamp(now))
            acl += [f"user {dev}", f"topic write $oc/devices/{dev}/user/#"]
        else:
            users[gw] = SECRET
    extra = {"extra_config": "retain_available false", "listener_config": "max_qos 1",
             "message_size_limit": 1024 * 1024} if restricted else {}  # fmt: skip
    broker = MosquittoBroker(root / "broker", plain=False, auth=True, users=users,
                             acl="\n".join(acl) + "\n" if acl else None, **extra)  # type: ignore[arg-type]  # fmt: skip
    broker.start()
    pubs = []
    for i in range(n):
        gw = f"gw{i:03d}"
        if restricted:
            opts = ProfileOptions({"device_id": f"pid_{gw}", "check_timestamp": True}, SECRET, "x")
            cfg = MqttSection(host="127.0.0.1", port=broker.auth_port, tls=False,
                              protocol="3.1.1", client_id=gw, profile="huawei-iotda",
                              profile_options=opts, keepalive_s=30)  # fmt: skip
            prof: profiles.Profile | None = profiles.build(cfg, gw)
            assert prof is not None
            prof.clock = lambda: now  # one credential per device for the password file
        else:
            cfg = MqttSection(host="127.0.0.1", port=broker.auth_port, tls=False, client_id=gw,
                              username=gw, password=SECRET, keepalive_s=30)  # fmt: skip
            prof = None
        sections.append((cfg, prof))
    for i, (cfg, prof) in enumerate(sections):
        store = Store(root / f"gw{i:03d}.db")
        pubs.append(Publisher(cfg, f"gw{i:03d}", store, boot_id="bench", profile=prof))
    return broker, pubs


def _wait(pubs: list[Publisher], timeout: float = 600.0) -> float:
    """Wait until all are connected and drained; return when all were first connected."""
    end = time.monotonic() + timeout
    connected_at = 0.0
    while time.monotonic() < end:
        if not connected_at and all(p.connected for p in pubs):
            connected_at = time.perf_counter()
        if all(p.store.figures()["pending"] == 0 and p.connected for p in pubs):
            return connected_at or time.perf_counter()
        time.sleep(0.05)
    raise TimeoutError("the fleet did not drain")


def _cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of a process (``/proc/PID/stat`` fields 14 and 15)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class _NoJitter:
    """Stands in for ``random`` in :mod:`gateway.uplink.link`: every gateway waits 1 s."""

    @staticmethod
    def random() -> float:
        return 0.0


def run(restricted: bool, n: int, backlog: int, jitter: bool = True) -> dict[str, Any]:
    """What one storm did: seconds from the broker's return to all connected and to all
    drained, connections of the busiest gateway, connects/s at the broker, its CPU."""
    from gateway.uplink import link

    saved = link.random
    if not jitter:
        link.random = _NoJitter  # type: ignore[assignment]
    rss0 = _rss_kib()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        broker, pubs = _fleet(restricted, n, root)
        try:
            for i, p in enumerate(pubs):
                p.store.add(list(punches(backlog, terminal=f"t{i}")))
                p.start()
            _wait(pubs)
            rss = (_rss_kib() - rss0) / n
            mark = len(broker.log_text())
            broker.kill()  # the cloud goes away; punches keep coming
            for i, p in enumerate(pubs):
                p.store.add(list(punches(backlog, terminal=f"t{i}", start=backlog)))
            t0 = time.perf_counter()
            broker.start()
            cpu0 = _cpu_s(broker.pid)
            connected = _wait(pubs) - t0
            dt = time.perf_counter() - t0
            cpu = _cpu_s(broker.pid) - cpu0
            log = broker.log_text()[mark:]
            per_gw = [len(re.findall(rf" as (pid_)?gw{i:03d}\S* ", log)) for i in range(n)]
            per_s = Counter(m.group(1) for m in re.finditer(
                r"^(\d\d:\d\d:\d\d): New client connected .* as (pid_)?gw\d{3}", log, re.M))
            return {"drained": dt, "connected": connected, "max_connects": max(per_gw),
                    "punches": n * backlog, "peak_cps": max(per_s.values(), default=0),
                    "seconds_with_connects": len(per_s), "broker_cpu": cpu, "rss_kib": rss}
        finally:
            link.random = saved
            for p in pubs:
                p.stop(drain_timeout=1.0)
                p.store.close()
            broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    # paho waits with select(), which cannot watch a descriptor above 1023; each gateway
    # holds ~6 (its store's two connections, WAL, shm) + its socket, so one process runs
    # about 120 gateways at most: a fleet of 200 needs 200 processes (not done, issue 18).
    ap.add_argument("--gateways", type=int, default=20, help="at most ~120 (select() limit)")
    ap.add_argument("--backlog", type=int, default=2000, help="punches per gateway per phase")
    ap.add_argument("--jitter", action="store_true",
                    help="also a run without reconnect jitter (issue 18)")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # ~7 descriptors per gateway
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    runs: list[tuple[str, dict[str, Any]]] = []
    if a.jitter:
        runs.append(("generic, no reconnect jitter", run(False, a.gateways, a.backlog, False)))
    runs.append(("generic, MQTT 5, plain broker (baseline)", run(False, a.gateways, a.backlog)))
    runs.append(("huawei-iotda, 3.1.1, platform-like broker", run(True, a.gateways, a.backlog)))
    rows = [[name, a.gateways, r["punches"], r["connected"], r["drained"],
             r["punches"] / r["drained"], r["max_connects"], r["peak_cps"],
             r["seconds_with_connects"], r["broker_cpu"], r["rss_kib"] / 1024]
            for name, r in runs]  # fmt: skip
    print(machine())
    print(table(["run", "gateways", "punches after return", "all connected s", "drained in s",
                 "punches/s", "max connects per gateway", "peak connects/s",
                 "seconds with connects", "broker CPU s", "MiB per gateway"], rows))  # fmt: skip
    base, cloud = runs[-2][1], runs[-1][1]
    print(f"restricted / baseline drain time: {cloud['drained'] / base['drained']:.2f}")
    if a.jitter:
        flat = runs[0][1]
        print(f"peak connects/s, jitter / no jitter: {base['peak_cps']}/{flat['peak_cps']}"
              f" = {base['peak_cps'] / max(1, flat['peak_cps']):.2f}")


if __name__ == "__main__":
    main()
