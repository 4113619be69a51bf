"""Issue 7, security checks with the real daemon: TLS verification refuses a broker signed by
another CA (nothing delivered, fault 6), secrets never reach the logs or the health/status
payloads, a world-readable password file is refused, and bandit is clean."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.ops import control_client as control
from tests.pipeline.harness import GatewayProcess, wait_until, write_config, write_punch_file

SECRET = "Sup3r-s3cret-pw-7f2c"
ROOT = Path(__file__).resolve().parents[2]


def _terminal(path: Path) -> dict[str, object]:
    return {"name": "t1", "driver": "virtual", "file": str(path), "serial": "SN1"}


def _status(sock: Path) -> dict:
    return control.call(sock, {"cmd": "status"}, timeout=5)


def _has_fault(sock: Path, code: int) -> bool:
    try:
        return any(f["code"] == code for f in _status(sock)["faults"])
    except control.DaemonUnreachable:
        return False  # not listening yet


def _gateway(tmp_path: Path, mqtt: dict, env: dict | None = None, args: tuple = ()) -> tuple:
    log = tmp_path / "t1.jsonl"
    write_punch_file(log, 20)
    sock = tmp_path / "gw.sock"
    cfg = write_config(tmp_path / "gw.toml",
                       gateway={"data_dir": str(tmp_path / "data"), "control_socket": str(sock),
                                "health_interval_s": 1},
                       mqtt=mqtt, terminals=[_terminal(log)])
    gp = GatewayProcess(cfg, tmp_path / "gw.log", env)
    if args:  # extra CLI arguments for `run` (e.g. --log-level debug)
        gp.start = _start_with(gp, args)  # type: ignore[method-assign]
    return gp, sock


def _start_with(gp: GatewayProcess, args: tuple):
    def start() -> GatewayProcess:
        out = gp.log_path.open("ab")
        gp.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(gp.config), "run", *args],
            stdout=out, stderr=subprocess.STDOUT, env=gp.env)
        out.close()
        return gp
    return start


@pytest.mark.parametrize("which", ["wrong_ca", "system_cas"])
def test_tls_to_a_broker_signed_by_another_ca_is_refused_with_fault_6(tmp_path, mosquitto,
                                                                     certs, subscriber, which):
    """Verification is on by default: the default trust store (no ca_file) and a wrong
    ca_file both refuse the test CA's broker; nothing is delivered; fault 6 is shown."""
    sub = subscriber(mosquitto.port, "attendance/#")
    mqtt = {"host": "localhost", "port": mosquitto.tls_port, "tls": True}
    if which == "wrong_ca":
        mqtt["ca_file"] = str(certs.wrong_ca_cert)
    gw, sock = _gateway(tmp_path, mqtt)
    with gw:
        wait_until(lambda: _has_fault(sock, 6), 60, "fault 6 in the health snapshot")
        text = next(f["text"] for f in _status(sock)["faults"] if f["code"] == 6)
        assert "certificate" in text.lower()
        assert _status(sock)["queue"]["pending"] == 20
        assert gw.terminate() == 0
    assert not sub.punches(), "nothing may be delivered to an unverified broker"
    assert "CERTIFICATE_VERIFY_FAILED" in gw.log() or "not trusted" in gw.log()


def test_tls_fault_clears_once_the_right_ca_is_used(tmp_path, mosquitto, certs, subscriber):
    sub = subscriber(mosquitto.port, "attendance/#")
    gw, sock = _gateway(tmp_path, {"host": "localhost", "port": mosquitto.tls_port, "tls": True,
                                   "ca_file": str(certs.ca_cert)})
    with gw:
        sub.wait_for_punches(20, timeout=60)
        assert not any(f["code"] == 6 for f in _status(sock)["faults"])
        assert gw.terminate() == 0


@pytest.mark.parametrize("source", ["password_file", "env"])
def test_secrets_never_in_logs_or_payloads(tmp_path, mosquitto_factory, subscriber, source):
    broker = mosquitto_factory(auth=True, users={"gw": SECRET, "sub": "sub"})
    sub = subscriber(broker.auth_port, "attendance/#", username="sub", password="sub")
    mqtt: dict = {"host": "127.0.0.1", "port": broker.auth_port, "username": "gw"}
    env = None
    if source == "env":
        env = {"GATEWAY_MQTT_PASSWORD": SECRET}
    else:
        pw = tmp_path / "mqtt.password"
        pw.write_text(SECRET + "\n")
        pw.chmod(0o600)
        mqtt["password_file"] = str(pw)
    gw, sock = _gateway(tmp_path, mqtt, env, ("--log-level", "debug"))
    with gw:
        sub.wait_for_punches(20, timeout=60)
        wait_until(lambda: sub.retained("attendance/gw-test/health") is not None, 30, "health")
        status = json.dumps(_status(sock))
        assert gw.terminate() == 0
    payloads = b"".join(m.payload for m in sub.messages)
    assert SECRET.encode() not in payloads
    assert SECRET not in status
    assert SECRET not in gw.log()
    # ... and not when the broker refuses it either (wrong password: fault 6, logged)
    broker.stop()
    broker.users = {"gw": "another-password", "sub": "sub"}
    broker.start()
    (tmp_path / "refused").mkdir()
    gw2, sock2 = _gateway(tmp_path / "refused", mqtt, env, ("--log-level", "debug"))
    with gw2:
        wait_until(lambda: _has_fault(sock2, 6), 60, "fault 6")
        assert SECRET not in json.dumps(_status(sock2))
        assert gw2.terminate() == 0
    assert SECRET not in gw2.log()


def test_world_readable_password_file_is_refused_end_to_end(tmp_path):
    pw = tmp_path / "mqtt.password"
    pw.write_text(SECRET + "\n")
    pw.chmod(0o644)
    gw, _ = _gateway(tmp_path, {"host": "127.0.0.1", "port": 1883, "username": "gw",
                                "password_file": str(pw)})
    check = subprocess.run(
        [sys.executable, "-m", "gateway", "config", "check", str(gw.config)],
        capture_output=True, text=True, check=False, timeout=60)
    assert check.returncode == 2
    assert "world-readable" in check.stdout + check.stderr
    gw.start()
    assert gw.proc is not None and gw.proc.wait(60) == 2, "the daemon refuses to start"
    assert "world-readable" in gw.log() and f"chmod 0640 {pw}" in gw.log()
    assert SECRET not in gw.log() + check.stdout + check.stderr
    pw.chmod(0o640)
    ok = subprocess.run(
        [sys.executable, "-m", "gateway", "config", "check", str(gw.config)],
        capture_output=True, text=True, check=False, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_bandit_is_clean():
    bandit = shutil.which("bandit") or str(Path(sys.executable).parent / "bandit")
    if not Path(bandit).exists():
        pytest.skip("bandit is not installed (pip install -e '.[dev]')")
    r = subprocess.run([bandit, "-c", "pyproject.toml", "-r", "gateway", "drivers", "-q"], cwd=ROOT,
                       capture_output=True, text=True, check=False, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
