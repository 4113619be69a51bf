"""doctor names the failing step (DNS, TLS, login, terminal, serial port, disk) and its exit
code matches: 0 all pass, 1 any WARN/FAIL, 2 invalid config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.devkit.broker import free_ports
from tests.cli.conftest import start_and_wait
from tests.conftest import BROKER_USER
from tests.pipeline.harness import write_config


def _checks(result: Any) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in result.json()["checks"]}


def _config(tmp_path: Path, name: str, *, mqtt: dict[str, Any],
            terminals: list[dict[str, Any]] | None = None,
            store: dict[str, Any] | None = None) -> Path:
    return write_config(
        tmp_path / f"{name}.toml",
        gateway={"data_dir": str(tmp_path / f"{name}-data"),
                 "control_socket": str(tmp_path / f"{name}.sock")},
        mqtt=mqtt, store=store,
        terminals=terminals or [{"name": "v1", "driver": "virtual"}],
    )


def test_doctor_names_dns_unreachable_terminal_missing_serial_and_low_disk(tmp_path, ctl):
    (dead_port,) = free_ports(1)
    cfg = _config(
        tmp_path, "many",
        mqtt={"host": "no-such-broker.invalid", "port": 8883},
        store={"min_free_disk_mb": 1 << 40},  # more than any filesystem has
        terminals=[
            {"name": "lobby", "driver": "zk", "host": "127.0.0.1", "port": dead_port,
             "timeout_s": 2},
            {"name": "side-door", "driver": "serial", "port": str(tmp_path / "ttyUSB9"),
             "baudrate": 9600, "framing": "line"},
            {"name": "ok", "driver": "virtual"},
        ],
    )
    r = ctl(cfg, "doctor", "--json")
    assert r.rc == 1, r.err
    res, checks = r.json(), _checks(r)
    assert set(res["failing"]) == {"disk", "broker DNS", "terminal lobby", "terminal side-door"}
    assert checks["disk"]["fault"] == 3
    assert checks["broker TCP"]["status"] == "SKIP"
    assert checks["terminal lobby"]["fault"] == 1 and "unreachable" in checks[
        "terminal lobby"]["detail"]
    assert checks["terminal side-door"]["fault"] == 2
    assert "missing" in checks["terminal side-door"]["detail"]
    assert checks["terminal ok"]["status"] == "PASS"
    assert checks["daemon"]["status"] == "WARN"
    assert all(c["fix"] for c in res["checks"] if c["status"] in ("WARN", "FAIL"))
    human = ctl(cfg, "doctor")
    assert human.rc == 1
    assert "FAIL  broker DNS" in human.out and "LED 2" in human.out
    assert "failing: disk, broker DNS, terminal lobby, terminal side-door" in human.out


def test_doctor_tls_wrong_ca_and_good_ca(tmp_path, mosquitto, certs, ctl):
    wrong = _config(tmp_path, "wrongca", mqtt={"host": "localhost", "port": mosquitto.tls_port,
                                               "tls": True, "ca_file": str(certs.wrong_ca_cert)})
    r = ctl(wrong, "doctor", "--json")
    checks = _checks(r)
    assert r.rc == 1
    assert [checks[s]["status"] for s in ("broker DNS", "broker TCP", "broker TLS",
                                          "broker login")] == ["PASS", "PASS", "FAIL", "SKIP"]
    assert checks["broker TLS"]["fault"] == 6 and "not trusted" in checks["broker TLS"]["detail"]
    good = _config(tmp_path, "goodca", mqtt={"host": "localhost", "port": mosquitto.tls_port,
                                             "tls": True, "ca_file": str(certs.ca_cert)})
    checks = _checks(ctl(good, "doctor", "--json"))
    assert checks["broker TLS"]["status"] in ("PASS", "WARN")  # WARN only if it expires soon
    assert "valid until" in checks["broker TLS"]["detail"]
    assert checks["broker login"]["status"] == "PASS"


def test_doctor_wrong_password(tmp_path, mosquitto_factory, ctl):
    broker = mosquitto_factory(auth=True)
    pw = tmp_path / "mqtt.password"
    pw.write_text("not-the-password\n")
    pw.chmod(0o600)
    cfg = _config(tmp_path, "badpw", mqtt={"host": "127.0.0.1", "port": broker.auth_port,
                                           "username": BROKER_USER, "password_file": str(pw)})
    r = ctl(cfg, "doctor", "--json")
    checks = _checks(r)
    assert r.rc == 1 and r.json()["failing"] == ["broker login"]
    assert checks["broker login"]["fault"] == 6
    assert "refused the login" in checks["broker login"]["detail"]
    assert "not-the-password" not in r.out  # never print secrets


def test_doctor_all_pass_with_daemon_and_invalid_config(tmp_path, mosquitto, gateway_factory,
                                                        ctl):
    gp = start_and_wait(gateway_factory(mqtt={"host": "127.0.0.1", "port": mosquitto.port},
                                        terminals=[{"name": "v1", "driver": "virtual"}]))
    r = ctl(gp.config, "doctor", "--json")
    assert r.rc == 0, r.out
    checks = _checks(r)
    assert checks["daemon"]["status"] == "PASS" and checks["terminal v1"]["status"] == "PASS"
    assert checks["database"]["status"] == "PASS" and checks["broker login"]["status"] == "PASS"
    gp.terminate()
    bad = tmp_path / "bad.toml"
    bad.write_text(gp.config.read_text().replace('driver = "virtual"', 'driver = "virtul"'))
    r = ctl(bad, "doctor", "--json")
    assert r.rc == 2 and r.json()["failing"] == ["config"]
    assert "virtul" in r.json()["checks"][0]["detail"]
