"""``gatewayctl doctor``: every health check of PRODUCT.md §6, each with a verdict and a fix.

Verdicts (PASS / WARN / FAIL / SKIP, fault code, fix) are :mod:`gateway.ops.checks`.
Order: config → daemon → database → disk → broker (DNS, TCP, TLS, login) → each terminal →
clock → GPIO → power. Checks never raise: a crash inside one is itself reported as a FAIL.

Terminals: with the daemon running, its own view (the runner's state and the driver's
figures) is used, because a serial port the daemon holds is locked and a ZK terminal may
allow one session only; with the daemon stopped, the driver's own ``diagnose()`` (the driver
contract, ``gateway.pipeline.driver``): doctor knows no driver by name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.config import Config, TerminalConfig
from gateway.ops.checks import FAIL, PASS, SKIP, WARN, Check, guarded

if TYPE_CHECKING:
    from gateway.pipeline.driver import Driver


def run_checks(
    cfg: Config, *, daemon: dict[str, Any] | None, snapshot: dict[str, Any] | None
) -> list[Check]:
    """Every check after the config (which the caller validated)."""
    from gateway.ops import netcheck

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
        out += guarded(fn.__name__.strip("_"), fn, cfg)
    # Issue 19: never a second login with the device's identity while the daemon is connected.
    view = (snapshot or {}).get("broker") if daemon else None
    out += netcheck.broker_checks(cfg.mqtt, daemon_view=view, clock_synced=lambda: _synced(cfg))
    terminals = (snapshot or {}).get("terminals", {})
    for t in cfg.terminals:
        out += guarded(
            f"terminal {t.name}", _terminal, t, cfg, terminals.get(t.name), daemon is not None
        )
    if cfg.adms is not None:
        out += guarded("push listener", _push, cfg, daemon is not None)
    for fn in (_clock, _gpio, _power):
        out += guarded(fn.__name__.strip("_"), fn, cfg)
    return out


def _push(cfg: Config, running: bool) -> list[Check]:
    """Issue 15: the ``[adms]`` listener answers, and every push terminal that knocked and
    was refused (unknown SN, address outside ``allow_networks``) is shown to be added."""
    import socket

    from drivers.adms.hub import read_state

    a = cfg.adms
    where = f"{a.host}:{a.port}"
    out: list[Check] = []
    if running:
        host = "127.0.0.1" if a.host in ("0.0.0.0", "") else a.host  # nosec B104 # noqa: S104
        try:
            socket.create_connection((host, a.port), timeout=3).close()
            out.append(Check("push listener", PASS, f"listening on {where}"))
        except OSError as err:
            out.append(Check("push listener", FAIL, f"nothing answers on {where}: {err}",
                             "another program holds the port? journalctl -u attendance-gateway",
                             1))  # fmt: skip
    for u in read_state(Path(cfg.gateway.data_dir)).get("unknown", []):
        sn = u.get("serial_number")
        out.append(Check(
            "push terminal refused", WARN,
            f"SN {sn or '?'} from {u.get('address')} ({u.get('why')}), last seen "
            f"{u.get('last_seen')}, {u.get('requests')} request(s)",
            f'if it is ours: add [[terminals]] driver = "adms" serial_number = "{sn}"'
            if u.get("why") == "unknown serial number"
            else f"if it is ours: add its network to [adms] allow_networks ({u.get('address')})",
        ))  # fmt: skip
    return out


# -- store and disk --------------------------------------------------------------------------
def _database(cfg: Config) -> Check:
    from gateway.store.backup import BackupError, inspect
    from gateway.store.schema import SCHEMA_VERSION

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
def _driver(t: TerminalConfig, cfg: Config) -> Driver:
    from gateway.pipeline import registry
    from gateway.pipeline.driver import DriverContext

    ctx = DriverContext(cfg.gateway.id, cfg.gateway.zone, data_dir=str(cfg.gateway.data_dir))
    return registry.load(t.driver)(t.name, t.options, ctx)


def _terminal(
    t: TerminalConfig, cfg: Config, live: dict[str, Any] | None, daemon_running: bool
) -> list[Check]:
    name = f"terminal {t.name}"
    driver = _driver(t, cfg)
    if daemon_running and live is not None:
        return _from_daemon(name, t, live, driver)
    found = driver.diagnose()
    if found.verdict == "skip":
        return [Check(name, SKIP, found.detail, found.fix)]
    if found.verdict != "ok":
        return [Check(name, FAIL, found.detail, found.fix or driver.advice(), found.fault or 1)]
    return [Check(name, PASS, found.detail), *_figures(name, t, dict(found.figures))]


def _from_daemon(name: str, t: TerminalConfig, live: dict[str, Any], driver: Driver) -> list[Check]:
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
    fault = live.get("fault") if isinstance(live.get("fault"), int) else 1
    return [Check(name, FAIL, f"{state}: {detail}", driver.advice(), fault=fault)]


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


# -- the Pi ----------------------------------------------------------------------------------
def _clock(cfg: Config) -> Check:
    from gateway.appliance import sysinfo

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


def _synced(cfg: Config) -> bool:
    from gateway.appliance import sysinfo

    setting = cfg.gateway.time_sync
    if setting == "assume":
        return True
    return Path(setting).exists() if setting != "auto" else sysinfo.SystemTimeSync().state()[0]


def _gpio(cfg: Config) -> Check:
    from gateway.appliance import sysinfo

    user = sysinfo.SERVICE_USER
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
    bad = [n for n in nodes if not sysinfo.service_may_open(os.stat(n))]
    if bad:
        return Check(
            "gpio",
            WARN,
            f"{user} may not open {', '.join(bad)}: the LEDs stay dark",
            f"sudo usermod -aG gpio {user}; restart the daemon",
        )
    return Check("gpio", PASS, f"{', '.join(nodes)} accessible to {user}")


def _power(cfg: Config) -> Check:
    from gateway.appliance import sysinfo

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
