"""Configuration: TOML → typed, frozen objects, with every error reported at once.

Each error carries its TOML path (``terminals[1].baudrate: expected one of …``). Unknown keys
are errors (a typo must never silently fall back to a default). Secrets never live in the
file: the MQTT password comes from ``password_file`` or ``$GATEWAY_MQTT_PASSWORD``. Each
driver validates its own ``[[terminals]]`` table (``parse_options``), so the loader knows
nothing of ZK or serial options.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.config import defaults as d
from gateway.config.validate import Fields
from gateway.errors import ConfigError, ConfigIssue, DriverNotFound
from gateway.remote import settings as remote_settings
from gateway.remote.settings import RemoteSection

DEFAULT_PATH = d.CONFIG_PATH
DEFAULT_SOCKET = d.CONTROL_SOCKET
PASSWORD_ENV = "GATEWAY_MQTT_PASSWORD"  # nosec B105 # noqa: S105 - a variable name
# Topic-safe names: they appear in MQTT topics, so no '/', '+', '#', spaces (AWS topic rules).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class GatewaySection:
    id: str
    data_dir: Path
    timezone: str
    health_interval_s: float = d.HEALTH_INTERVAL_S
    control_socket: Path = Path(d.CONTROL_SOCKET)
    time_sync: str = d.TIME_SYNC  # "auto" | "assume" | a path whose existence means "synced"
    watchdog_stall_s: float = d.WATCHDOG_STALL_S

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class MqttSection:
    host: str
    port: int
    tls: bool = d.TLS
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never printed
    password_source: str | None = None  # where the password came from (for doctor)
    topic_prefix: str = d.TOPIC_PREFIX
    keepalive_s: int = d.KEEPALIVE_S
    max_inflight: int = d.MAX_INFLIGHT
    batch_max_punches: int = d.BATCH_MAX_PUNCHES
    max_publish_rate: float = d.MAX_PUBLISH_RATE
    max_message_bytes: int = d.MAX_MESSAGE_BYTES
    protocol: str = d.PROTOCOL  # "5" or "3.1.1"
    client_id: str | None = None
    profile: str = "generic"  # PRODUCT.md §9: gateway.uplink.profiles (issue 19)
    profile_options: Any = None  # its [mqtt.<profile>] table (ProfileOptions; no secret in repr)


@dataclass(frozen=True)
class StoreSection:
    min_free_disk_mb: int = d.MIN_FREE_DISK_MB
    retain_delivered_days: int = d.RETAIN_DELIVERED_DAYS
    backup_interval_h: float = d.BACKUP_INTERVAL_H
    backup_keep: int = d.BACKUP_KEEP


@dataclass(frozen=True)
class LedsSection:
    backend: str = d.LED_BACKEND
    heartbeat_pin: int = d.HEARTBEAT_PIN
    network_pin: int = d.NETWORK_PIN
    fault_pin: int = d.FAULT_PIN


@dataclass(frozen=True)
class TerminalConfig:
    name: str
    driver: str
    options: Any  # the driver's own frozen options object


@dataclass(frozen=True)
class Config:
    gateway: GatewaySection
    mqtt: MqttSection
    store: StoreSection
    leds: LedsSection
    terminals: tuple[TerminalConfig, ...]
    path: Path | None = None
    remote: RemoteSection = field(default_factory=RemoteSection)  # issue 16; off by default
    adms: Any = None  # drivers.adms.options.ListenerOptions when push terminals are used

    @property
    def db_path(self) -> Path:
        return self.gateway.data_dir / d.DB_NAME


def config_path(explicit: str | None = None) -> Path:
    """``--config`` wins, then ``$GATEWAY_CONFIG``, then the default path."""
    return Path(explicit or os.environ.get(d.CONFIG_ENV) or DEFAULT_PATH)


def load(path: str | Path, *, check_files: bool = True) -> Config:
    """Read and validate a config file; raise ``ConfigError`` with every issue."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as err:
        raise ConfigError([ConfigIssue("", f"cannot read {p}: {err.strerror or err}")]) from err
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError([ConfigIssue("", f"{p}: not valid TOML: {err}")]) from err
    return parse(data, path=p, check_files=check_files)


def parse(data: dict[str, Any], *, path: Path | None = None, check_files: bool = True) -> Config:
    """Validate an already-parsed TOML document."""
    issues: list[ConfigIssue] = []
    root = Fields(data, "", issues)
    gateway = _gateway(Fields(root.table_of("gateway"), "gateway", issues))
    mqtt = _mqtt(Fields(root.table_of("mqtt"), "mqtt", issues), gateway, check_files)
    store = _store(Fields(root.table_of("store"), "store", issues))
    leds = _leds(Fields(root.table_of("leds"), "leds", issues))
    terminals = _terminals(data.get("terminals", []), issues)
    adms = _adms(root, "adms" in data, terminals, issues)
    root.ignore("terminals")
    remote = remote_settings.parse(root.table_of("remote"), issues)
    root.done()
    if issues:
        raise ConfigError(issues)
    assert gateway is not None and mqtt is not None
    return Config(gateway, mqtt, store, leds, terminals, path, remote, adms)


def _adms(
    root: Fields, present: bool, terminals: tuple[TerminalConfig, ...], issues: list[ConfigIssue]
) -> Any:
    """``[adms]`` (issue 15): the push listener, there when asked for or when a terminal
    uses ``driver = "adms"``; one terminal per serial number."""
    push = [t for t in terminals if t.driver == "adms"]
    if not present and not push:
        return None
    from drivers.adms.options import parse_listener  # lazy, like the drivers

    seen: dict[str, str] = {}
    for t in push:
        sn = t.options.serial_number
        if sn in seen:
            issues.append(
                ConfigIssue("terminals", f"{t.name} and {seen[sn]} share serial_number {sn!r}")
            )
        seen[sn] = t.name
    return parse_listener(Fields(root.table_of("adms"), "adms", issues))


def _name(f: Fields, key: str, value: str | None) -> None:
    if value is not None and not _NAME.match(value):
        f.error(
            key,
            f"expected letters, digits, '.', '_', '-' (it is used in MQTT topics), got {value!r}",
        )


def _gateway(f: Fields) -> GatewaySection | None:
    gid = f.str("id")
    _name(f, "id", gid)
    data_dir = f.str("data_dir", d.DATA_DIR)
    tz = f.str("timezone")
    if tz is not None:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            f.error("timezone", f'expected an IANA zone such as "Asia/Shanghai", got "{tz}"')
            tz = None
    health = f.number("health_interval_s", d.HEALTH_INTERVAL_S, min=1, max=3600)
    sock = f.str("control_socket", d.CONTROL_SOCKET)
    sync = f.str("time_sync", d.TIME_SYNC)
    stall = f.number("watchdog_stall_s", d.WATCHDOG_STALL_S, min=5, max=3600)
    f.done()
    if gid is None or tz is None:
        return None
    return GatewaySection(gid, Path(data_dir), tz, health, Path(sock), sync, stall)


def _mqtt(f: Fields, gw: GatewaySection | None, check_files: bool) -> MqttSection | None:
    from gateway.uplink import profiles  # lazy: the CLI's fast paths never need it

    profile = f.choice("profile", profiles.NAMES, "generic") or "generic"
    profile_options = profiles.parse(profile, f, gw.id if gw else None, check_files)
    host = f.str("host")
    tls = f.bool("tls", d.TLS)
    port = f.int("port", d.PORT_TLS if tls else d.PORT_PLAIN, min=1, max=65535)
    files: dict[str, Path | None] = {}
    for key in ("ca_file", "cert_file", "key_file"):
        value = f.str(key, None)
        files[key] = Path(value) if value else None
        if value and check_files and not Path(value).is_file():
            f.error(key, f"file not found: {value}")
    if (files["cert_file"] is None) != (files["key_file"] is None):
        f.error("cert_file", "cert_file and key_file go together (mutual TLS)")
    if not tls and any(files.values()):
        f.error("tls", "ca_file/cert_file/key_file are set but tls = false")
    username = f.str("username", None)
    password, source = _password(f, check_files)
    prefix = f.str("topic_prefix", d.TOPIC_PREFIX)
    if prefix and (set(prefix) & {"+", "#"} or prefix.startswith("/") or prefix.endswith("/")):
        f.error("topic_prefix", f"no '+', '#', or leading/trailing '/', got {prefix!r}")
    section = MqttSection(
        host=host or "",
        port=port,
        tls=tls,
        ca_file=files["ca_file"],
        cert_file=files["cert_file"],
        key_file=files["key_file"],
        username=username,
        password=password,
        password_source=source,
        topic_prefix=prefix,
        keepalive_s=f.int("keepalive_s", d.KEEPALIVE_S, min=5, max=3600),
        max_inflight=f.int("max_inflight", d.MAX_INFLIGHT, min=1, max=1000),
        batch_max_punches=f.int("batch_max_punches", d.BATCH_MAX_PUNCHES, min=1, max=1000),
        max_publish_rate=f.number("max_publish_rate", d.MAX_PUBLISH_RATE, min=0.1, max=100000),
        max_message_bytes=f.int(
            "max_message_bytes", d.MAX_MESSAGE_BYTES, min=1024, max=256 * 1024 * 1024
        ),
        protocol=f.choice("protocol", ("5", "3.1.1"), profiles.PROFILES[profile].default_protocol),
        client_id=f.str("client_id", gw.id if gw else None),
        profile=profile,
        profile_options=profile_options,
    )
    if host:
        profiles.check(profile, section, f)
    f.done()
    return section if host else None


def _password(f: Fields, check_files: bool) -> tuple[str | None, str | None]:
    path = f.str("password_file", None)
    if f.has("password"):
        f.ignore("password")
        f.error("password", "secrets are never inline: use password_file or $" + PASSWORD_ENV)
    env = os.environ.get(PASSWORD_ENV)
    if env:
        return env, "$" + PASSWORD_ENV
    if path is None or not check_files:
        return None, path
    try:
        st = os.stat(path)
        if st.st_mode & stat.S_IROTH:
            f.error("password_file", f"{path} is world-readable: run chmod 0640 {path}")
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip("\r\n"), path
    except OSError as err:
        f.error("password_file", f"cannot read {path}: {err.strerror or err}")
        return None, path


def _store(f: Fields) -> StoreSection:
    s = StoreSection(
        min_free_disk_mb=f.int("min_free_disk_mb", d.MIN_FREE_DISK_MB, min=0),
        retain_delivered_days=f.int(
            "retain_delivered_days", d.RETAIN_DELIVERED_DAYS, min=0, max=3650
        ),
        backup_interval_h=f.number("backup_interval_h", d.BACKUP_INTERVAL_H, min=0),
        backup_keep=f.int("backup_keep", d.BACKUP_KEEP, min=0, max=1000),
    )
    f.done()
    return s


def _leds(f: Fields) -> LedsSection:
    s = LedsSection(
        backend=f.choice("backend", ("rpi_gpio", "null"), d.LED_BACKEND),
        heartbeat_pin=f.int("heartbeat_pin", d.HEARTBEAT_PIN, min=0, max=27),
        network_pin=f.int("network_pin", d.NETWORK_PIN, min=0, max=27),
        fault_pin=f.int("fault_pin", d.FAULT_PIN, min=0, max=27),
    )
    pins = [s.heartbeat_pin, s.network_pin, s.fault_pin]
    if len(set(pins)) != 3:
        f.error("", f"heartbeat_pin, network_pin and fault_pin must differ, got {pins}")
    f.done()
    return s


def _terminals(raw: Any, issues: list[ConfigIssue]) -> tuple[TerminalConfig, ...]:
    from gateway.pipeline import registry  # lazy: `config check` imports drivers only here

    if not isinstance(raw, list):
        issues.append(ConfigIssue("terminals", "expected an array of tables ([[terminals]])"))
        return ()
    out: list[TerminalConfig] = []
    seen: set[str] = set()
    for i, table in enumerate(raw):
        path = f"terminals[{i}]"
        if not isinstance(table, dict):
            issues.append(ConfigIssue(path, "expected a table"))
            continue
        f = Fields(table, path, issues)
        name = f.str("name")
        _name(f, "name", name)
        if name in seen:
            f.error("name", f'duplicate terminal name "{name}"')
        seen.add(name or "")
        kind = f.str("driver")
        options: Any = None
        if kind is not None:
            try:
                spec = registry.load(kind)
            except DriverNotFound as err:
                f.error("driver", str(err))
                f.ignore(*table.keys())  # unknown driver: its keys cannot be judged
            else:
                options = spec.parse_options(f)
        f.done()
        if name and kind and options is not None:
            out.append(TerminalConfig(name, kind, options))
    return tuple(out)
