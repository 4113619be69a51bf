"""status / terminals / queue / actions against a running and a stopped daemon; the control
socket's handling of bad requests."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from gateway.ops import control_client as control
from gateway.store.db import Store
from tests.cli.conftest import socket_of, start_and_wait
from tests.pipeline.harness import wait_until, write_punch_file


def _terminals(tmp_path: Path) -> list[dict[str, object]]:
    write_punch_file(tmp_path / "lobby.jsonl", 7)
    return [{"name": "lobby", "driver": "virtual", "file": str(tmp_path / "lobby.jsonl")},
            {"name": "door", "driver": "virtual", "fail_open": True}]


def test_status_running_then_stopped(tmp_path, mosquitto, gateway_factory, ctl):
    gp = start_and_wait(gateway_factory(mqtt={"host": "127.0.0.1", "port": mosquitto.port},
                                        terminals=_terminals(tmp_path)))
    cfg = gp.config

    def delivered() -> bool:
        snap = ctl(cfg, "status", "--json").json()
        return snap["queue"]["pending"] == 0 and snap["queue"]["last_seq"] == 7

    wait_until(delivered, 30, "7 punches delivered")
    r = ctl(cfg, "status", "--json")
    snap = r.json()
    assert r.rc == 1  # the door terminal is unreachable: degraded
    assert snap["daemon"]["running"] is True and snap["daemon"]["pid"] == gp.proc.pid
    assert snap["broker"]["connected"] is True
    assert snap["terminals"]["lobby"]["state"] == "online"
    assert snap["terminals"]["lobby"]["stored"] == 7
    assert snap["terminals"]["door"]["state"] == "offline"
    fault = next(f for f in snap["faults"] if f["code"] == 1)
    assert "door" in fault["text"] and fault["meaning"] and fault["fix"]
    human = ctl(cfg, "status")
    assert human.rc == 1
    assert "daemon running" in human.out and "LED 1" in human.out and "lobby" in human.out
    assert "\033[" not in human.out  # not a TTY: no colour

    t = ctl(cfg, "--json", "terminals")
    assert t.rc == 1 and set(t.json()["terminals"]) == {"lobby", "door"}
    q = ctl(cfg, "queue", "--json")
    assert q.rc == 0 and q.json()["pending"] == 0 and q.json()["last_seq"] == 7
    probe = ctl(cfg, "terminal", "probe", "lobby", "--json")
    assert probe.rc == 0, probe.err
    assert probe.json()["result"]["runner"]["state"] == "online"
    assert probe.json()["result"]["serial"] == "VIRTUAL"
    nope = ctl(cfg, "terminal", "sync-clock", "lobby")  # virtual terminals have no clock
    assert nope.rc == 1 and "cannot sync_clock" in nope.err
    missing = ctl(cfg, "terminal", "pull", "nosuch")
    assert missing.rc == 2 and "no terminal named" in missing.err
    pull = ctl(cfg, "terminal", "pull", "door")  # offline terminal: a clear refusal
    assert pull.rc == 1 and ("cannot pull" in pull.err or "offline" in pull.err)
    led = ctl(cfg, "led", "test", "--json")
    assert led.rc == 0 and led.json()["total_s"] > 0 and len(led.json()["steps"]) >= 10

    # The stored figures the CLI shows with the daemon stopped are the store's own.
    with Store(gp.config.parent / "gw-data" / "gateway.db", readonly=True) as st:
        stored = st.figures()

    assert gp.terminate() == 0
    r = ctl(cfg, "status", "--json")
    off = r.json()
    assert r.rc == 1
    assert off["daemon"]["running"] is False
    assert off["queue"]["last_seq"] == 7 and off["queue"]["pending"] == 0
    assert {k: off["queue"][k] for k in ("last_seq", "pending", "dead_lettered")} == {
        k: stored[k] for k in ("last_seq", "pending", "dead_lettered")}
    assert off["terminals"]["lobby"]["state"] == "stopped"
    assert off["terminals"]["lobby"]["stored"] == 7
    human = ctl(cfg, "status")
    assert "daemon not running — showing the stored state" in human.out
    assert "lobby" in human.out and "door" in human.out
    assert ctl(cfg, "terminals").rc == 1
    assert ctl(cfg, "queue").rc == 0
    for args in (["terminal", "pull", "lobby"], ["terminal", "sync-clock", "lobby"],
                 ["led", "test"]):
        r = ctl(cfg, *args)
        assert r.rc == 3, (args, r.err)
        assert "systemctl start attendance-gateway" in r.err
    direct = ctl(cfg, "terminal", "probe", "lobby", "--json")  # falls back to a direct probe
    assert direct.rc == 0 and direct.json()["result"]["via"] == "direct"


def _raw(path: Path, data: bytes, timeout: float = 10.0) -> dict[str, object]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(str(path))
    try:
        s.sendall(data)
    except OSError:
        pass  # the server may close before taking all of a huge line
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    return json.loads(buf)


def test_control_socket_survives_bad_requests(tmp_path, mosquitto, gateway_factory):
    gp = start_and_wait(gateway_factory(mqtt={"host": "127.0.0.1", "port": mosquitto.port},
                                        terminals=_terminals(tmp_path)[:1]))
    sock = socket_of(gp)
    assert oct(sock.stat().st_mode & 0o777) == "0o660"
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # a stuck client, holding on
    idle.connect(str(sock))
    cases = {
        b"garbage\n": "bad_request",
        b"\xff\xfe\x00\n": "bad_request",
        b"[1, 2, 3]\n": "bad_request",
        b'{"cmd": "format_disk"}\n': "unknown_command",
        b'{"cmd": 42}\n': "unknown_command",
        b'{"cmd": "probe", "terminal": ["lobby"]}\n': "bad_request",
        b'{"cmd": "probe", "terminal": "nosuch"}\n': "not_found",
        b'{"cmd": "probe", "terminal": "lobby", "timeout_s": "soon"}\n': "bad_request",
        b'{"cmd": "resend", "since": 5}\n': "bad_request",
        b'{"cmd": "resend", "dead": "yes"}\n': "bad_request",
        b'{"cmd": "punch", "punch": "now"}\n': "bad_request",
        b'{"cmd": "punch", "punch": {"terminal": "lobby"}}\n': "bad_request",
        b"x" * (control.MAX_LINE * 4) + b"\n": "bad_request",
    }
    for data, kind in cases.items():
        reply = _raw(sock, data)
        assert reply["ok"] is False and reply["kind"] == kind, (data[:40], reply)
        assert reply["error"]
    # Several requests on one connection, and the daemon still answers everyone.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(sock))
    s.sendall(b'{"cmd": "ping"}\n{"cmd": "status"}\n')
    buf = b""
    while buf.count(b"\n") < 2:
        buf += s.recv(65536)
    s.close()
    first, second = (json.loads(line) for line in buf.splitlines())
    assert first["result"]["pid"] == gp.proc.pid and second["result"]["gateway"] == "gw-test"
    assert control.call(sock, {"cmd": "status"})["terminals"]["lobby"]["state"] in (
        "online", "offline")
    assert gp.running()
    idle.close()
    time.sleep(0.2)
    assert control.ping(sock) is not None
    assert gp.terminate() == 0
    assert not sock.exists()  # removed on a clean stop
