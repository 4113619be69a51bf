"""Push terminals end to end: the real daemon process with its ``[adms]`` listener, simulated
terminals over real HTTP, a real mosquitto and a recording subscriber."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

from drivers.adms.sim import SimTerminal
from tests.adms import fixtures as fx
from tests.pipeline.harness import GatewayProcess, validate, wait_until, write_config

PREFIX = "attendance/gw-test"


def _config(tmp_path: Path, mqtt_port: int, port: int, sns: list[str]) -> Path:
    data = tmp_path / "data"
    cfg = write_config(
        tmp_path / "gw.toml",
        gateway={"data_dir": str(data), "control_socket": str(tmp_path / "gw.sock")},
        mqtt={"host": "127.0.0.1", "port": mqtt_port},
        terminals=[{"name": f"face{i}", "driver": "adms", "serial_number": sn, "delay_s": 1}
                   for i, sn in enumerate(sns)],
    )
    with cfg.open("a") as fh:
        fh.write(f'[adms]\nlisten = "127.0.0.1:{port}"\nallow_networks = ["127.0.0.0/8"]\n'
                 "error_delay_s = 1\n")
    return cfg


def _sim(port: int, sn: str, **kw) -> tuple[SimTerminal, threading.Event, threading.Thread]:
    from zoneinfo import ZoneInfo

    t = SimTerminal(f"127.0.0.1:{port}", sn, ZoneInfo("Asia/Shanghai"), source="127.0.0.2",
                    error_delay_s=1.0, timeout_s=20.0, **kw)
    stop = threading.Event()
    th = threading.Thread(target=t.run, args=(stop,), name=f"sim:{sn}", daemon=True)
    th.start()
    return t, stop, th


def _send(port: int, request: bytes) -> bytes:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=40,
                                      source_address=("127.0.0.2", 0)) as s:
            s.sendall(request)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            return data
    except OSError:
        return b""


def _gatewayctl(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "--config", str(cfg), *args],
                          capture_output=True, text=True, timeout=60, check=False)


def _rows(db: Path) -> list[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return [r[0] for r in conn.execute("SELECT event_id FROM punches")]


def test_push_punches_reach_the_broker_and_strangers_are_shown(tmp_path, mosquitto, subscriber,
                                                               free_port):
    sub = subscriber(mosquitto.port, "attendance/#")
    cfg = _config(tmp_path, mosquitto.port, free_port, ["SN0401", "NCD8252500406"])
    gw = GatewayProcess(cfg, tmp_path / "gw.log")
    sims = []
    try:
        with gw:
            sims.append(_sim(free_port, "SN0401", dialect="kv"))
            sims.append(_sim(free_port, "STRANGER01"))
            t = sims[0][0]
            t.fill(120, datetime(2026, 11, 23, 8, 0))
            sims[1][0].fill(3, datetime(2026, 11, 23, 8, 0))
            # The real capture's bytes (tests/adms/fixtures.py), through the real listener:
            wait_until(lambda: _send(free_port, f"GET {fx.FIELD_POLL_PATH} HTTP/1.1\r\n\r\n"
                                     .encode()).startswith(b"HTTP/1.1 200"), 30, "listening")
            assert _send(free_port, fx.FIELD_ATTLOG_REQUEST).endswith(b"OK:1")
            punches = sub.wait_for_punches(121, timeout=90)
            wait_until(lambda: sims[1][0].failures >= 2, 30, "stranger refused")
            def listed() -> dict:
                return json.loads(_gatewayctl(cfg, "terminals", "--json").stdout)

            wait_until(lambda: listed()["terminals"]["face0"]["state"] == "online", 60, "online")
            doc = listed()
            assert doc["terminals"]["face0"]["driver"] == "adms"
            assert [u["serial_number"] for u in doc["refused"]] == ["STRANGER01"]
            assert doc["refused"][0]["address"] == "127.0.0.2"
            human = _gatewayctl(cfg, "terminals").stdout
            assert "STRANGER01" in human and "127.0.0.2" in human
            doctor = _gatewayctl(cfg, "doctor", "--json")
            checks = json.loads(doctor.stdout)["checks"]
            refused = [c for c in checks if c["name"] == "push terminal refused"]
            assert refused and "STRANGER01" in refused[0]["detail"]
            assert any(c["name"] == "push listener" and c["status"] == "PASS" for c in checks)
            health = f"{PREFIX}/health"
            wait_until(lambda: sub.retained(health) is not None and "face0" in json.loads(
                sub.retained(health).payload)["terminals"], 30, "health with the terminal")
            validate(json.loads(sub.retained(health).payload), "health.schema.json")
            assert gw.terminate() == 0
    finally:
        for _t, stop, th in sims:
            stop.set()
            th.join(25)
    for batch in sub.batches():
        validate(batch, "punches.schema.json")
    assert {p["driver"] for p in punches} == {"adms"}
    assert {p["terminal_sn"] for p in punches} == {"SN0401", "NCD8252500406"}
    sim_punches = [p for p in punches if p["terminal_sn"] == "SN0401"]
    first = min(sim_punches, key=lambda p: p["time"])
    assert first["time"] == "2026-11-23T08:00:00+08:00" and first["verify"] == "face"
    assert len({p["event_id"] for p in sim_punches}) == 120
    (captured,) = [p for p in punches if p["terminal_sn"] == "NCD8252500406"]
    assert captured["event_id"] == "adms-NCD8252500406-9001-20260728T224021-1-15"
    assert (captured["user_id"], captured["state"], captured["verify"]) == ("9001", "check_out",
                                                                            "face")
    assert captured["time"] == "2026-07-28T22:40:21+08:00"  # local time in [gateway] timezone


def test_kill_9_mid_upload_loses_nothing_and_duplicates_nothing(tmp_path, mosquitto, subscriber,
                                                                free_port):
    sub = subscriber(mosquitto.port, "attendance/#")
    cfg = _config(tmp_path, mosquitto.port, free_port, ["SN0402"])
    db = tmp_path / "data" / "gateway.db"
    t, stop, th = _sim(free_port, "SN0402", batch_max=250)
    t.fill(6000, datetime(2026, 10, 1, 7, 0))
    try:
        gw = GatewayProcess(cfg, tmp_path / "gw1.log").start()
        wait_until(lambda: db.exists() and 0 < len(_rows(db)), 90, "uploads committing")
        gw.kill()  # power-cut style, in the middle of the terminal's upload
        assert t.pending() > 0, "the kill came after the upload finished: test too slow"
        committed_before = set(_rows(db))
        t.punch("77", 1)  # a punch while the gateway is down
        gw2 = GatewayProcess(cfg, tmp_path / "gw2.log").start()
        wait_until(lambda: t.pending() == 0, 180, "the terminal re-sent everything")
        sub.wait_for_punches(6001, timeout=120)
        wait_until(lambda: len(set(p["event_id"] for p in sub.punches())) == 6001, 60, "all")
        assert gw2.terminate() == 0
    finally:
        stop.set()
        th.join(25)
    rows = _rows(db)
    assert len(rows) == len(set(rows)) == 6001, "one row per punch: no duplicate event_id"
    assert committed_before <= set(rows)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        seqs = [r[0] for r in conn.execute("SELECT seq FROM punches ORDER BY seq")]
    assert seqs == list(range(1, 6002)), "gap-free seq across the kill"
