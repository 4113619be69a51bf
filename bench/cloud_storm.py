"""Reconnect storm through a restricted cloud profile (issue 19).

A fleet of gateways (in one process: a publisher and a store each) is connected to one broker
with a backlog each; the broker is killed (-9), every store gets more punches, the broker
returns. Measured: the time until every gateway has drained everything, and the connections
each gateway made (1 = no reconnect loop). The restricted run is ``huawei-iotda`` (MQTT 3.1.1,
no will, no retain, signed login per device) against a Mosquitto set up like the platform
(``retain_available false``, ``max_qos 1``, 1 MB, an ACL per device); the baseline in the same
run is ``generic`` MQTT 5 against a plain Mosquitto.

    .venv/bin/python -m bench.cloud_storm --gateways 20 --backlog 2000
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

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


def _wait(pubs: list[Publisher], timeout: float = 600.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if all(p.store.figures()["pending"] == 0 and p.connected for p in pubs):
            return
        time.sleep(0.05)
    raise TimeoutError("the fleet did not drain")


def run(restricted: bool, n: int, backlog: int) -> tuple[float, int, int]:
    """(seconds from the broker's return to all drained, max connections of one gateway,
    punches delivered in the storm)."""
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        broker, pubs = _fleet(restricted, n, root)
        try:
            for i, p in enumerate(pubs):
                p.store.add(list(punches(backlog, terminal=f"t{i}")))
                p.start()
            _wait(pubs)
            mark = len(broker.log_text())
            broker.kill()  # the cloud goes away; punches keep coming
            for i, p in enumerate(pubs):
                p.store.add(list(punches(backlog, terminal=f"t{i}", start=backlog)))
            t0 = time.perf_counter()
            broker.start()
            _wait(pubs)
            dt = time.perf_counter() - t0
            log = broker.log_text()[mark:]
            per_gw = [len(re.findall(rf" as (pid_)?gw{i:03d}\S* ", log)) for i in range(n)]
            return dt, max(per_gw), n * backlog
        finally:
            for p in pubs:
                p.stop(drain_timeout=1.0)
                p.store.close()
            broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--gateways", type=int, default=20)
    ap.add_argument("--backlog", type=int, default=2000, help="punches per gateway per phase")
    a = ap.parse_args()
    base = run(False, a.gateways, a.backlog)
    cloud = run(True, a.gateways, a.backlog)
    rows = [
        ["generic, MQTT 5, plain broker (baseline)", a.gateways, base[2], base[0],
         base[2] / base[0], base[1]],
        ["huawei-iotda, 3.1.1, platform-like broker", a.gateways, cloud[2], cloud[0],
         cloud[2] / cloud[0], cloud[1]],
    ]  # fmt: skip
    print(machine())
    print(table(["run", "gateways", "punches after return", "drained in s", "punches/s",
                 "max connects per gateway"], rows))  # fmt: skip
    print(f"restricted / baseline drain time: {cloud[0] / base[0]:.2f}")


if __name__ == "__main__":
    main()
