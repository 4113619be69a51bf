"""The systemd unit (verify + security score), the installer and the uninstaller.

The installer runs with ``--root`` into a temp directory: real systemd-sysusers and
systemd-tmpfiles work on that root, and systemctl/apt/udevadm are skipped there.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "attendance-gateway.service"
CHECK = REPO / "scripts" / "check-unit.sh"

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)
needs_root_tools = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("systemd-sysusers") is None,
    reason="the installer needs root and systemd-sysusers/-tmpfiles",
)


def run(*args: str | Path, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=600, check=check
    )


def unit_keys(path: Path) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            keys.setdefault(key, []).append(value)
    return keys


# -- the unit ----------------------------------------------------------------------------------


def test_unit_has_the_contracted_settings() -> None:
    k = unit_keys(UNIT)
    assert k["Type"] == ["notify"] and k["NotifyAccess"] == ["main"]
    assert k["WatchdogSec"] == ["30s"] and k["Restart"] == ["always"]
    assert k["TimeoutStopSec"] == ["20s"]
    # What ExecStart= says is proven by running it (test_appliance_execstart.py, issue 12);
    # here only that it is one line starting the installed venv's gatewayctl.
    assert len(k["ExecStart"]) == 1
    assert k["ExecStart"][0].startswith("/opt/attendance-gateway/venv/bin/gatewayctl ")
    assert k["User"] == ["attgw"] and k["Group"] == ["attgw"]
    assert k["SupplementaryGroups"] == ["dialout gpio"]
    assert k["StateDirectory"] == ["attendance-gateway"] and k["StateDirectoryMode"] == ["0750"]
    assert k["RuntimeDirectory"] == ["attendance-gateway"]
    assert k["RuntimeDirectoryMode"] == ["0750"]
    assert k["ConfigurationDirectory"] == ["attendance-gateway"]
    assert k["DevicePolicy"] == ["closed"]
    allowed = " ".join(k["DeviceAllow"])
    for dev in ("ttyUSB", "ttyACM", "ttyAMA", "ttyS", "gpiochip", "gpiomem"):
        assert dev in allowed
    assert "PrivateDevices" not in k  # it would hide the serial ports and GPIO
    wants = " ".join(k["Wants"] + k["After"])
    assert "modprobe@usbserial.service" in wants and "modprobe@cdc_acm.service" in wants
    env = " ".join(k["Environment"])
    assert "PYTHONFAULTHANDLER=1" in env and "PYTHONUNBUFFERED=1" in env
    # systemd has no inline comments: a '#' in a value would become part of it.
    assert not [v for vs in k.values() for v in vs if "#" in v]


@needs_analyze
def test_check_unit_script_passes_and_scores_at_most_2() -> None:
    res = run(CHECK)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "verify: clean" in res.stdout
    score = float(re.search(r"security exposure: ([0-9.]+)", res.stdout).group(1))
    assert score <= 2.0


@needs_analyze
def test_check_unit_catches_a_typo(tmp_path: Path) -> None:
    bad = tmp_path / UNIT.name
    bad.write_text(UNIT.read_text().replace("Type=notify", "Typ=notify"))
    res = run(CHECK, bad)
    assert res.returncode == 1
    assert "Unknown key 'Typ'" in res.stderr


@needs_analyze
def test_check_unit_catches_weak_hardening(tmp_path: Path) -> None:
    text = UNIT.read_text()
    for key in (
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "SystemCallFilter=@system-service",
    ):
        text = text.replace(key + "\n", "")
    weak = tmp_path / UNIT.name
    weak.write_text(text)
    res = run(CHECK, weak)
    assert res.returncode == 1
    assert "must be <= 2.0" in res.stderr


# -- installer -----------------------------------------------------------------------------------


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the installer's inputs with a stand-in config.example.toml."""
    src = tmp_path / "checkout"
    (src / "scripts").mkdir(parents=True)
    for name in ("install.sh", "uninstall.sh"):
        shutil.copy2(REPO / "scripts" / name, src / "scripts" / name)
    shutil.copytree(REPO / "systemd", src / "systemd")
    (src / "config.example.toml").write_text('[gateway]\nid = "example"\n')
    return src


def gid_of(root: Path, group: str) -> int:
    for line in (root / "etc" / "group").read_text().splitlines():
        name, _, gid, *_ = line.split(":")
        if name == group:
            return int(gid)
    raise LookupError(group)


def install(checkout: Path, root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run(checkout / "scripts" / "install.sh", "--root", root, "--no-pip", *extra)


@needs_root_tools
@pytest.mark.parametrize(
    ("model", "package"),
    [
        ("Raspberry Pi 5 Model B Rev 1.0", "rpi-lgpio"),
        ("Raspberry Pi 4 Model B Rev 1.4", "RPi.GPIO"),
        ("Raspberry Pi 3 Model B Plus Rev 1.3", "RPi.GPIO"),
        ("QEMU Virtual Machine", "none"),
    ],
)
def test_installer_picks_the_gpio_package(
    checkout: Path, tmp_path: Path, model: str, package: str
) -> None:
    res = install(checkout, tmp_path / "root", "--board-model", model)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"GPIO package: {package}" in res.stdout


@needs_root_tools
def test_installer_into_a_temp_root(checkout: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    res = install(checkout, root, "--board-model", "Raspberry Pi 5 Model B Rev 1.0")
    assert res.returncode == 0, res.stdout + res.stderr
    attgw = gid_of(root, "attgw")
    assert "attgw" in (root / "etc/passwd").read_text()
    for group in ("dialout", "gpio"):
        members = [
            ln for ln in (root / "etc/group").read_text().splitlines() if ln.startswith(group + ":")
        ]
        assert members and "attgw" in members[0].split(":")[3].split(",")

    etc = root / "etc/attendance-gateway"
    for path, mode in ((etc / "config.toml", 0o640), (etc / "mqtt.password", 0o640)):
        st = path.stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (mode, 0, attgw), path
    assert (etc / "config.toml").read_text() == (checkout / "config.example.toml").read_text()
    assert (etc / "mqtt.password").read_text() == ""
    st = etc.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o750, attgw)
    data = root / "var/lib/attendance-gateway"
    assert stat.S_IMODE(data.stat().st_mode) == 0o750
    attgw_uid = next(
        int(ln.split(":")[2])
        for ln in (root / "etc/passwd").read_text().splitlines()
        if ln.startswith("attgw:")
    )
    assert (data.stat().st_uid, data.stat().st_gid) == (attgw_uid, attgw)

    unit = root / "etc/systemd/system/attendance-gateway.service"
    assert unit.read_text() == UNIT.read_text()
    assert (root / "usr/lib/sysusers.d/attendance-gateway.conf").exists()
    assert (root / "usr/lib/tmpfiles.d/attendance-gateway.conf").exists()
    assert (root / "etc/udev/rules.d/60-attendance-gateway.rules").exists()
    assert os.readlink(root / "usr/local/bin/gatewayctl") == (
        "/opt/attendance-gateway/venv/bin/gatewayctl"
    )
    assert "systemctl: skipped" in res.stdout


@needs_root_tools
def test_installer_is_idempotent_and_keeps_config_and_password(
    checkout: Path, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    assert install(checkout, root).returncode == 0
    etc = root / "etc/attendance-gateway"
    (etc / "config.toml").write_text("# edited by a technician\n")
    (etc / "mqtt.password").write_text("s3cret\n")
    os.chmod(etc / "mqtt.password", 0o644)  # someone loosened it: the installer fixes it
    res = install(checkout, root)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "kept existing" in res.stdout
    assert (etc / "config.toml").read_text() == "# edited by a technician\n"
    assert (etc / "mqtt.password").read_text() == "s3cret\n"
    assert stat.S_IMODE((etc / "mqtt.password").stat().st_mode) == 0o640
    assert "s3cret" not in res.stdout + res.stderr


@needs_root_tools
def test_uninstall_keeps_data_and_config_unless_purge(checkout: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert install(checkout, root).returncode == 0
    (root / "opt/attendance-gateway/venv/bin").mkdir(parents=True)  # as if pip had run
    store = root / "var/lib/attendance-gateway/store.sqlite"
    store.write_bytes(b"punches")
    uninstall = checkout / "scripts" / "uninstall.sh"
    res = run(uninstall, "--root", root)
    assert res.returncode == 0, res.stderr
    assert not (root / "etc/systemd/system/attendance-gateway.service").exists()
    assert not (root / "opt/attendance-gateway").exists()
    assert not os.path.lexists(root / "usr/local/bin/gatewayctl")
    assert store.read_bytes() == b"punches"
    assert (root / "etc/attendance-gateway/config.toml").exists()
    res = run(uninstall, "--root", root, "--purge")
    assert res.returncode == 0, res.stderr
    assert not (root / "var/lib/attendance-gateway").exists()
    assert not (root / "etc/attendance-gateway").exists()


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError:
        return False
    return True


@pytest.mark.slow
@needs_root_tools
def test_full_install_with_pip_into_a_temp_root(tmp_path: Path) -> None:
    """The real thing, venv and all (network for the dependencies, about a minute)."""
    if not _pypi_reachable():
        pytest.skip("PyPI is not reachable")
    root = tmp_path / "root"
    res = run(REPO / "scripts" / "install.sh", "--root", root, "--board-model", "none")
    assert res.returncode in (0, 2), res.stdout + res.stderr  # 2: the config check failed
    venv = root / "opt/attendance-gateway/venv"
    out = run(venv / "bin/python", "-c",
              "import gateway.appliance.leds, gateway.appliance.sdnotify; print('ok')")
    assert out.stdout.strip() == "ok", out.stderr
    assert (venv / "bin/gatewayctl").exists()
