"""Fixtures for remote commands (issue 16): a real daemon process, a real mosquitto, a ZK
simulator and a file terminal, shared by the module (starting them takes seconds)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from drivers.zk_terminal.sim import ZkSimulator
from gateway.devkit.broker import MosquittoBroker
from gateway.devkit.subscriber import Subscriber
from gateway.remote.client import Broker
from gateway.remote.client import send as client_send
from tests.pipeline.harness import GatewayProcess, wait_until, write_config, write_punch_file
from tests.remote.remote_rig import BASE, GATEWAY, RES, KeyRing


@dataclass
class Rig:
    tmp: Path
    broker: MosquittoBroker
    zk: ZkSimulator
    keys: KeyRing
    gw: GatewayProcess
    sub: Subscriber
    config: Path
    db: Path

    def ask(self, verb: str, args: dict | None = None, *, timeout: float = 60.0,
            response_topic: str | None = None, **kw) -> dict:
        """Sign with the ops key (unless told), send through the broker, wait for the result."""
        obj = self.keys.sign(verb, args, **kw)
        return client_send(Broker("127.0.0.1", self.broker.port), obj, prefix="attendance",
                           gateway=GATEWAY, timeout=timeout, response_topic=response_topic)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("remote")
    broker = MosquittoBroker(tmp / "mosquitto").start()
    zk = ZkSimulator(tz=ZoneInfo("Asia/Shanghai"), serial="REMOTE000001").start()
    zk.bulk_load(20, users=5)
    log = tmp / "t1.jsonl"
    write_punch_file(log, 30)
    keys = KeyRing(tmp)
    data = tmp / "data"
    config = write_config(
        tmp / "gw.toml",
        gateway={"data_dir": str(data), "control_socket": str(tmp / "gw.sock")},
        # 4 KiB messages: a bundle result is larger, so it travels in chunks
        mqtt={"host": "127.0.0.1", "port": broker.port, "max_message_bytes": 4096},
        terminals=[{"name": "t1", "driver": "virtual", "file": str(log), "serial": "SN-t1"},
                   {"name": "lobby", "driver": "zk", "host": "127.0.0.1", "port": zk.port,
                    "timeout_s": 3, "sync_clock": False}],
    )
    config.write_text(config.read_text() + keys.toml(rate_per_min=6000))
    sub = Subscriber("127.0.0.1", broker.port, [RES, "support/#", f"{BASE}/punches"]).start()
    gw = GatewayProcess(config, tmp / "gw.log").start()
    r = Rig(tmp, broker, zk, keys, gw, sub, config, data / "gateway.db")
    try:
        wait_until(lambda: "remote commands on" in gw.log(), 60, "remote commands on")
        # subscribed once a status command is answered (the SUBACK is not logged)
        def answered() -> bool:
            try:
                return bool(r.ask("status", timeout=3.0)["ok"])
            except Exception:
                return False
        wait_until(answered, 90, "a first remote status answer", interval=0.5)
        yield r
    finally:
        if gw.running():
            gw.terminate()
        sub.stop()
        zk.stop()
        broker.stop()
