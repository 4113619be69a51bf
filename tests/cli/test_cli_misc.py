"""Help, completion, bundle redaction, and the light imports of ``status``."""

from __future__ import annotations

import subprocess
import sys
import tarfile

from gateway.cli import build_parser
from tests.pipeline.harness import write_config

HEAVY = ("structlog", "paho", "zk", "serial", "jsonschema", "tenacity")


def _config(tmp_path):
    pw = tmp_path / "mqtt.password"
    pw.write_text("s3cret-pw\n")
    pw.chmod(0o600)
    return write_config(
        tmp_path / "gw.toml",
        gateway={"data_dir": str(tmp_path / "data"), "control_socket": str(tmp_path / "c.sock")},
        mqtt={"host": "127.0.0.1", "port": 1, "username": "u", "password_file": str(pw)},
        terminals=[{"name": "lobby", "driver": "zk", "host": "127.0.0.1", "port": 1,
                    "password": 424242, "timeout_s": 1}],
    )


def test_every_help_reads(ctl, tmp_path):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name in sub.choices:
        r = ctl(tmp_path / "none.toml", name, "--help")
        assert r.rc == 0 and "usage: gatewayctl" in r.out and len(r.out) > 150, name
    r = ctl(tmp_path / "none.toml", "status")
    assert r.rc == 2 and "cannot read the config" in r.err
    assert ctl(tmp_path / "none.toml", "queue", "resend").rc == 2  # --since or --dead needed


def test_completion_script_is_valid_bash(ctl, tmp_path):
    r = ctl(tmp_path / "none.toml", "completion", "bash")
    assert r.rc == 0 and "complete -F _gatewayctl gatewayctl" in r.out
    assert "sync-clock" in r.out and "resend" in r.out
    check = subprocess.run(["bash", "-n"], input=r.out, text=True, capture_output=True)
    assert check.returncode == 0, check.stderr
    script = r.out + "\nCOMP_WORDS=(gatewayctl terminal s); COMP_CWORD=2; _gatewayctl; " \
                     "echo ${COMPREPLY[@]}\n"
    out = subprocess.run(["bash", "-c", script], text=True, capture_output=True)
    assert out.stdout.split() == ["sync-clock"], out.stderr


def test_bundle_redacts_secrets(ctl, tmp_path):
    cfg = _config(tmp_path)
    out = tmp_path / "b.tar.gz"
    r = ctl(cfg, "bundle", "--output", str(out), "--json")
    assert r.rc == 0, r.err
    with tarfile.open(out) as tar:
        files = {m.name.split("/")[-1]: tar.extractfile(m).read().decode() for m in tar
                 if m.isfile()}
    assert {"config.toml", "status.json", "doctor.json", "versions.json"} <= set(files)
    everything = "".join(files.values())
    assert "s3cret-pw" not in everything and "424242" not in everything
    assert str(tmp_path / "mqtt.password") in files["config.toml"]  # the path is no secret
    assert '"<redacted>"' in files["config.toml"]
    assert '"paho-mqtt"' in files["versions.json"]


def test_status_imports_nothing_heavy(tmp_path):
    cfg = _config(tmp_path)
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "gateway", "--config",
                        str(cfg), "status"], capture_output=True, text=True)
    assert r.returncode == 1  # daemon not running: degraded
    imported = {line.split("|")[-1].strip().split(".")[0] for line in r.stderr.splitlines()
                if line.startswith("import time:")}
    assert not imported & set(HEAVY), imported & set(HEAVY)
