"""Issue 2: every malformed config gives exit 2 and a message naming the key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import load
from gateway.errors import ConfigError

GOOD = """
[gateway]
id = "branch-042-gw1"
data_dir = "{data}"
timezone = "Asia/Shanghai"

[mqtt]
host = "mqtt.example.com"
port = 8883
username = "branch-042"
password_file = "{pw}"

[store]
min_free_disk_mb = 200

[leds]
backend = "null"

[[terminals]]
name = "virt"
driver = "virtual"
"""


@pytest.fixture
def write(tmp_path: Path):
    pw = tmp_path / "pw"
    pw.write_text("secret\n")
    pw.chmod(0o640)

    def _write(text: str) -> Path:
        p = tmp_path / "config.toml"
        p.write_text(text.format(data=tmp_path / "data", pw=pw))
        return p

    return _write


def test_good_config_loads(write):
    cfg = load(write(GOOD))
    assert cfg.gateway.id == "branch-042-gw1"
    assert cfg.mqtt.password == "secret"
    assert "secret" not in repr(cfg)
    assert cfg.mqtt.port == 8883 and cfg.mqtt.tls is True


CASES = [
    # (replace this, with this, the key the message must name)
    ('id = "branch-042-gw1"', 'id = "branch/042"', "gateway.id"),
    ('timezone = "Asia/Shanghai"', 'timezone = "Mars/Olympus"', "gateway.timezone"),
    ("port = 8883", 'port = "8883"', "mqtt.port"),
    ("port = 8883", "port = 70000", "mqtt.port"),
    ('host = "mqtt.example.com"', "", "mqtt.host"),
    ("port = 8883", "port = 8883\nkeepalive = 30", "mqtt.keepalive"),
    ("port = 8883", 'port = 8883\npassword = "hunter2"', "mqtt.password"),
    ("port = 8883", 'port = 8883\nprotocol = "4"', "mqtt.protocol"),
    ("port = 8883", 'port = 8883\nca_file = "/nonexistent/ca.pem"', "mqtt.ca_file"),
    ("min_free_disk_mb = 200", "min_free_disk_mb = -1", "store.min_free_disk_mb"),
    ('backend = "null"', 'backend = "gpiod"', "leds.backend"),
    ('backend = "null"', 'backend = "null"\nfault_pin = 17', "leds"),
    ('driver = "virtual"', 'driver = "zkk"', "terminals[0].driver"),
    ('driver = "virtual"', 'driver = "virtual"\nrate = "fast"', "terminals[0].rate"),
    ('driver = "virtual"', 'driver = "virtual"\nbogus = 1', "terminals[0].bogus"),
    ('name = "virt"', 'name = "a b"', "terminals[0].name"),
    ('[leds]', '[led]', "led"),
    ('[[terminals]]\nname = "virt"\ndriver = "virtual"',
     '[[terminals]]\nname = "v"\ndriver = "virtual"\n[[terminals]]\nname = "v"\n'
     'driver = "virtual"', "terminals[1].name"),
]


@pytest.mark.parametrize(("old", "new", "key"), CASES, ids=[c[2] + ":" + c[1][:20] for c in CASES])
def test_malformed_config_exit_2_names_the_key(write, capsys, old, new, key):
    assert old in GOOD
    path = write(GOOD.replace(old, new, 1))
    with pytest.raises(SystemExit) as exc:
        main(["config", "check", str(path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"  {key}" in err, err


def test_every_error_is_reported_at_once(write):
    bad = GOOD.replace("port = 8883", 'port = "x"').replace('backend = "null"', 'backend = "x"')
    bad = bad.replace('driver = "virtual"', 'driver = "nope"')
    with pytest.raises(ConfigError) as exc:
        load(write(bad))
    paths = {i.path for i in exc.value.issues}
    assert {"mqtt.port", "leds.backend", "terminals[0].driver"} <= paths
    assert '"zk"' in str(exc.value) and '"serial"' in str(exc.value)  # names the choices


def test_not_toml_and_missing_file(tmp_path, capsys):
    p = tmp_path / "c.toml"
    p.write_text("[gateway\n")
    assert _exit(["config", "check", str(p)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert _exit(["config", "check", str(tmp_path / "nope.toml")]) == 2


def test_world_readable_password_file_is_refused(write, tmp_path):
    p = write(GOOD)
    (tmp_path / "pw").chmod(0o644)
    with pytest.raises(ConfigError, match="world-readable"):
        load(p)


def test_password_from_environment(write, monkeypatch):
    monkeypatch.setenv("GATEWAY_MQTT_PASSWORD", "from-env")
    assert load(write(GOOD)).mqtt.password == "from-env"


def test_cli_json_and_real_process(write):
    path = write(GOOD.replace("port = 8883", "port = 0"))
    r = subprocess.run([sys.executable, "-m", "gateway", "--json", "config", "check", str(path)],
                       capture_output=True, text=True, env={**os.environ}, timeout=60)
    assert r.returncode == 2
    assert "mqtt.port" in r.stdout
    ok = subprocess.run([sys.executable, "-m", "gateway", "config", "check", str(write(GOOD))],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr


def _exit(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return int(exc.value.code or 0)
