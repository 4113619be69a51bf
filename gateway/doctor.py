"""``gatewayctl doctor``: every health check of PRODUCT.md §6, each with a verdict and a fix.

PASS / WARN / FAIL / SKIP, the LED fault code where one applies (the same codes as the red
LED and ``status``), and a one-line fix a technician can follow without reading source code.
Order: config → daemon → database → disk → broker (DNS, TCP, TLS, login) → each terminal →
clock → GPIO → power. Checks never raise: a crash inside one is itself reported as a FAIL.

Terminals: with the daemon running, its own view (the runner's state and the driver's
figures) is used, because a serial port the daemon holds is locked and a ZK terminal may
allow one session only; with the daemon stopped, a short direct connection.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.config import Config, TerminalConfig

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"
SERVICE_USER = "attgw"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str | None = None
    fault: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_checks(
    cfg: Config, *, daemon: dict[str, Any] | None, snapshot: dict[str, Any] | None
) -> list[Check]:
    """Every check after the config (which the caller validated)."""
    from gateway import netcheck

    out = [
        Check(
            "config",
            PASS,
            f"{cfg.path}: valid, gateway {cfg.gateway.id}, {len(cfg.terminals)} terminal(s)",
        )
    ]
    if daemon:
        out.append(
            Check(
                "daemon",
                PASS,
                f"running (pid {daemon.get('pid')}), control socket {cfg.gateway.control_socket}",
            )
        )
    else:
        out.append(
            Check(
                "daemon",
                WARN,
                "not running: punches are not being collected",
                "sudo systemctl start attendance-gateway; if it fails: "
                "journalctl -u attendance-gateway -n 50",
            )
        )
    for fn in (_database, _disk):
        out.append(_guard(fn.__name__.strip("_"), fn, cfg))
    out += netcheck.broker_checks(cfg.mqtt)
    terminals = (snapshot or {}).get("terminals", {})
    for t in cfg.terminals:
        out += _guard_many(
            f"terminal {t.name}", _terminal, t, cfg, terminals.get(t.name), daemon is not None
        )
    for fn in (_clock, _gpio, _power):
        out.append(_guard(fn.__name__.strip("_"), fn, cfg))
    return out


def _guard(name: str, fn: Any, *args: Any) -> Check:
    try:
        return fn(*args)  # type: ignore[no-any-return]
    except Exception as err:
        return Check(name, FAIL, f"the check itself failed: {type(err).__name__}: {err}")


def _guard_many(name: str, fn: Any, *args: Any) -> list[Check]:
    try:
        return list(fn(*args))
    except Exception as err:
        return [Check(name, FAIL, f"the check itself failed: {type(err).__name__}: {err}")]


# -- store and disk --------------------------------------------------------------------------
def _database(cfg: Config) -> Check:
    from gateway.backup import BackupError, inspect
    from gateway.store_schema import SCHEMA_VERSION

    db = cfg.db_path
    if not db.exists():
        return Check(
            "database",
            WARN,
            f"no database at {db} yet",
            "it is created when the daemon first starts: systemctl start attendance-gateway",
        )
    fix = (
        "stop the daemon, `gatewayctl backup` what can be read, then `gatewayctl restore` "
        "the newest good copy from <data_dir>/backups/ (the daemon also moves a corrupt "
        "file aside by itself on start)"
    )
    try:
        info = inspect(db)
    except BackupError as err:
        return Check("database", FAIL, str(err), fix, fault=4)
    if info["integrity"] != ["ok"]:
        return Check(
            "database", FAIL, f"quick_check: {'; '.join(info['integrity'][:3])}", fix, fault=4
        )
    if info["schema_version"] > SCHEMA_VERSION:
        return Check(
            "database",
            FAIL,
            f"schema v{info['schema_version']} is newer than this gateway (v{SCHEMA_VERSION})",
            "install the newer gateway version",
            fault=4,
        )
    p = info["punches"]
    detail = (
        f"quick_check ok, schema v{info['schema_version']}, {p.get('pending', 0)} pending, "
        f"{p.get('delivered', 0)} delivered, {p.get('dead', 0)} dead letter(s)"
    )
    if p.get("dead"):
        return Check(
            "database",
            WARN,
            detail + ": the broker refused some punches for good",
            "`gatewayctl queue peek` shows why; after fixing the cause: "
            "`gatewayctl queue resend --dead`",
            fault=6,
        )
    return Check("database", PASS, detail)


def _disk(cfg: Config) -> Check:
    st = os.statvfs(
        cfg.gateway.data_dir if cfg.gateway.data_dir.exists() else cfg.gateway.data_dir.parent
    )
    free = st.f_bavail * st.f_frsize // 2**20
    need = cfg.store.min_free_disk_mb
    detail = f"{free} MB free on {cfg.gateway.data_dir} (minimum {need} MB)"
    fix = (
        "free space: `sudo journalctl --vacuum-size=50M`, old files in "
        f"{cfg.gateway.data_dir}/backups, or a larger SD card; ZK terminals keep their "
        "logs meanwhile"
    )
    if free < need:
        return Check("disk", FAIL, detail + ": pulling from terminals is paused", fix, fault=3)
    if free < 2 * need:
        return Check("disk", WARN, detail + ": getting low", fix)
    return Check("disk", PASS, detail)


# -- terminals -------------------------------------------------------------------------------
def _terminal(
    t: TerminalConfig, cfg: Config, live: dict[str, Any] | None, daemon_running: bool
) -> list[Check]:
    name = f"terminal {t.name}"
    if daemon_running and live is not None:
        return _from_daemon(name, t, live)
    if t.driver == "zk":
        return _zk_direct(name, t, cfg)
    if t.driver == "serial":
        return _serial_direct(name, t)
    return _driver_direct(name, t, cfg)


def _from_daemon(name: str, t: TerminalConfig, live: dict[str, Any]) -> list[Check]:
    state, detail = live.get("state"), live.get("detail") or ""
    if state == "online":
        bits = [f"{k} {live[k]}" for k in ("serial", "firmware") if live.get(k)]
        out = [Check(name, PASS, "online" + (f" ({', '.join(bits)})" if bits else ""))]
        out += _figures(name, t, live)
        return out
    if state == "paused":
        return [
            Check(name, WARN, f"paused: {detail}", "free disk space (see the disk check)", fault=3)
        ]
    fault = 2 if t.driver == "serial" and "missing" in detail else 1
    return [Check(name, FAIL, f"{state}: {detail}", _terminal_fix(t), fault=fault)]


def _figures(name: str, t: TerminalConfig, f: dict[str, Any]) -> list[Check]:
    out: list[Check] = []
    skew, limit = f.get("clock_skew_s"), getattr(t.options, "max_clock_skew_s", 60.0)
    if isinstance(skew, int | float):
        if abs(skew) > limit:
            out.append(
                Check(
                    f"{name} clock",
                    WARN,
                    f"terminal clock off by {skew:+.0f} s (limit {limit:g} s)",
                    f"gatewayctl terminal sync-clock {t.name} "
                    "(only once the Pi itself is NTP-synced)",
                )
            )
        else:
            out.append(Check(f"{name} clock", PASS, f"skew {skew:+.0f} s"))
    usage = f.get("log_usage")
    if isinstance(usage, int | float):
        text = f"log {usage:.0%} full ({f.get('log_records')}/{f.get('log_capacity')} records)"
        fix = (
            "archive and clear the terminal's log with the vendor tool, after "
            f"`gatewayctl terminal pull {t.name}`"
        )
        if usage > 0.95:
            out.append(Check(f"{name} log", FAIL, text, fix, fault=1))
        elif usage > 0.80:
            out.append(Check(f"{name} log", WARN, text, fix))
        else:
            out.append(Check(f"{name} log", PASS, text))
    return out


def _terminal_fix(t: TerminalConfig) -> str:
    o = t.options
    if t.driver == "zk":
        return (
            f"check the terminal's power and network: `ping {o.host}`, cable and switch "
            f"port; {o.transport.upper()} port {o.port} open; comm key = [[terminals]] "
            "password"
        )
    if t.driver == "serial":
        return (
            f"reseat the USB adapter and check `ls -l {o.port}` (by-id path, group "
            "dialout); reader powered?"
        )
    return "see the detail; `gatewayctl terminal probe " + t.name + "`"


def _zk_direct(name: str, t: TerminalConfig, cfg: Config) -> list[Check]:
    from drivers.zk_terminal.client import HardenedZK
    from drivers.zk_terminal.clock import read_terminal_time

    o = t.options
    zk = HardenedZK(o.host, o.port, min(o.timeout_s, 5.0), o.password, o.transport == "udp")
    try:
        zk.connect()
        serial = str(zk.get_serialnumber()).strip()
        firmware = str(zk.get_firmware_version())
        zk.read_sizes()
        when = read_terminal_time(zk)
    except Exception as err:
        return [
            Check(
                name,
                FAIL,
                f"unreachable at {o.transport}://{o.host}:{o.port}: {type(err).__name__}: {err}",
                _terminal_fix(t),
                fault=1,
            )
        ]
    finally:
        with contextlib.suppress(Exception):  # best effort: the socket is closed below anyway
            zk.disconnect()
        zk.close_socket()
    figures: dict[str, Any] = {}
    if when is not None:
        now = datetime.now(cfg.gateway.zone).replace(tzinfo=None)
        figures["clock_skew_s"] = round((when - now).total_seconds())
    cap = getattr(zk, "rec_cap", 0) or 0
    if cap:
        figures.update(log_usage=zk.records / cap, log_records=zk.records, log_capacity=cap)
    out = [Check(name, PASS, f"reachable, handshake ok (serial {serial}, firmware {firmware})")]
    return out + _figures(name, t, figures)


def _serial_direct(name: str, t: TerminalConfig) -> list[Check]:
    o = t.options
    if o.is_url:
        return [Check(name, SKIP, f"{o.port} is a network URL: start the daemon to test it")]
    if not os.path.exists(o.port):
        return [
            Check(
                name,
                FAIL,
                f"serial port missing: {o.port} does not exist",
                "reseat the adapter; `ls -l /dev/serial/by-id/` shows the right path "
                "for [[terminals]] port",
                fault=2,
            )
        ]
    st = os.stat(o.port)
    group = _group_name(st.st_gid)
    if not _service_may_open(st):
        return [
            Check(
                name,
                FAIL,
                f"{o.port}: the {SERVICE_USER} user may not open it "
                f"(mode {oct(st.st_mode & 0o777)}, group {group})",
                f"sudo usermod -aG {group} {SERVICE_USER} (then restart the daemon)",
                fault=2,
            )
        ]
    import serial

    try:
        port = serial.Serial(o.port, o.baudrate, timeout=0.1, exclusive=True)
        port.close()
    except (serial.SerialException, OSError) as err:
        locked = "lock" in str(err).lower()
        return [
            Check(
                name,
                FAIL,
                f"{o.port}: {err}",
                f"another program holds it: `sudo fuser -v {o.port}`, close it "
                "(miniterm, screen, ModemManager)"
                if locked
                else _terminal_fix(t),
                fault=2,
            )
        ]
    return [Check(name, PASS, f"{o.port} present, group {group}, opens (not locked)")]


def _driver_direct(name: str, t: TerminalConfig, cfg: Config) -> list[Check]:
    from gateway import registry
    from gateway.driver import DriverContext

    driver = registry.load(t.driver)(
        t.name,
        t.options,
        DriverContext(cfg.gateway.id, cfg.gateway.zone, data_dir=str(cfg.gateway.data_dir)),
    )
    try:
        driver.open()
        figures = dict(driver.status())
    except Exception as err:
        return [
            Check(
                name,
                FAIL,
                f"cannot open: {err}",
                _terminal_fix(t),
                fault=getattr(err, "fault", None) or 1,
            )
        ]
    finally:
        driver.close()
    return [Check(name, PASS, "opens and answers"), *_figures(name, t, figures)]


def _group_name(gid: int) -> str:
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _service_may_open(st: os.stat_result) -> bool:
    """Whether the service user can read+write a device; the caller's access off a Pi."""
    import grp
    import pwd

    try:
        user = pwd.getpwnam(SERVICE_USER)
    except KeyError:  # a developer's machine: judge by who runs doctor
        return (
            os.getuid() == 0
            or (st.st_mode & 0o006 == 0o006)
            or (st.st_uid == os.getuid() and st.st_mode & 0o600 == 0o600)
            or (st.st_gid in os.getgroups() and st.st_mode & 0o060 == 0o060)
        )
    if st.st_uid == user.pw_uid:
        return st.st_mode & 0o600 == 0o600
    try:
        members = grp.getgrgid(st.st_gid).gr_mem
    except KeyError:
        members = []
    in_group = st.st_gid == user.pw_gid or SERVICE_USER in members
    return bool(in_group and st.st_mode & 0o060 == 0o060) or st.st_mode & 0o006 == 0o006


# -- the Pi ----------------------------------------------------------------------------------
def _clock(cfg: Config) -> Check:
    from gateway import sysinfo

    setting = cfg.gateway.time_sync
    if setting == "assume":
        return Check("clock", PASS, 'time_sync = "assume": the host clock is trusted')
    if setting != "auto":
        ok, source = Path(setting).exists(), f"flag file {setting}"
    else:
        ok, source = sysinfo.SystemTimeSync().state()
    if ok:
        return Check("clock", PASS, f"NTP-synchronised ({source})")
    return Check(
        "clock",
        WARN,
        f"not NTP-synchronised ({source}): terminal clocks are left "
        "alone and card-reader punches are marked clock_synced=false",
        "allow UDP 123 out, check `timedatectl timesync-status`; wait a few minutes",
        fault=5,
    )


def _gpio(cfg: Config) -> Check:
    if cfg.leds.backend == "null":
        return Check("gpio", SKIP, 'leds backend = "null": no LEDs driven')
    nodes = sorted(str(p) for p in Path("/dev").glob("gpiochip*")) + [
        p for p in ("/dev/gpiomem",) if os.path.exists(p)
    ]
    if not nodes:
        return Check(
            "gpio",
            WARN,
            "no /dev/gpiochip* or /dev/gpiomem: not a Raspberry Pi?",
            'on other hardware set [leds] backend = "null"',
        )
    bad = [n for n in nodes if not _service_may_open(os.stat(n))]
    if bad:
        return Check(
            "gpio",
            WARN,
            f"{SERVICE_USER} may not open {', '.join(bad)}: the LEDs stay dark",
            f"sudo usermod -aG gpio {SERVICE_USER}; restart the daemon",
        )
    return Check("gpio", PASS, f"{', '.join(nodes)} accessible to {SERVICE_USER}")


def _power(cfg: Config) -> Check:
    from gateway import sysinfo

    thr = sysinfo.throttled()
    if thr is None:
        return Check("power", SKIP, "no under-voltage sensor (not a Raspberry Pi)")
    fix = "use the official 5 V power supply (5.1 V 3 A; 5 A on a Pi 5) and a short cable"
    if thr.under_voltage:
        return Check(
            "power",
            WARN,
            f"UNDER-VOLTAGE now ({thr.as_dict()['raw']}): SD card corruption risk",
            fix,
        )
    if thr.since_boot:
        return Check("power", WARN, f"since boot: {', '.join(thr.since_boot)}", fix)
    return Check("power", PASS, "no under-voltage or throttling since boot")


def exit_code(checks: list[Check]) -> int:
    """0 all PASS/SKIP; 1 any WARN or FAIL (documented in docs/cli.md)."""
    return 1 if any(c.status in (WARN, FAIL) for c in checks) else 0


def summary(checks: list[Check]) -> dict[str, int]:
    return {s: sum(1 for c in checks if c.status == s) for s in (PASS, WARN, FAIL, SKIP)}
