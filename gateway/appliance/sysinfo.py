"""Cheap readers of the Pi's own health for the health model, status and doctor.

Every reader returns None where the machine does not expose the figure (an x86 CI box, a
container, a kernel without the file), never raises, and takes its path as an argument so
tests point it at temp files. Sources: notes/pi-serial-gpio-systemd.md §4.1 and §4.2.

``SystemTimeSync`` implements ``gateway.pipeline.driver.TimeSync``: terminals' clocks are only set
from the Pi once the Pi itself is NTP-synchronised (a Pi 3/4 has no RTC).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from dataclasses import dataclass
from pathlib import Path

THERMAL_PATH = "/sys/class/thermal/thermal_zone0/temp"
THROTTLED_PATH = "/sys/devices/platform/soc/soc:firmware/get_throttled"
HWMON_ROOT = "/sys/class/hwmon"
UPTIME_PATH = "/proc/uptime"
MODEL_PATH = "/proc/device-tree/model"
SERVICE_USER = "attgw"  # the unit's User= (systemd/attendance-gateway.sysusers.conf)
TIMESYNCD_FLAG = "/run/systemd/timesync/synchronized"

#: ``vcgencmd get_throttled`` bits 0-3 ("now"); the same +16 mean "has happened since boot".
THROTTLE_BITS: dict[int, str] = {
    0: "under_voltage",
    1: "arm_frequency_capped",
    2: "throttled",
    3: "soft_temperature_limit",
}


def _read(path: str | os.PathLike[str]) -> str | None:
    try:
        return Path(path).read_text(encoding="ascii", errors="replace")
    except OSError:
        return None


def cpu_temperature_c(path: str = THERMAL_PATH) -> float | None:
    """SoC temperature in °C (the kernel reports millidegrees)."""
    text = _read(path)
    try:
        return int(text.strip()) / 1000.0 if text else None
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Throttled:
    """The firmware's power/thermal flags, decoded."""

    raw: int
    now: tuple[str, ...]
    since_boot: tuple[str, ...]

    @property
    def under_voltage(self) -> bool:
        return "under_voltage" in self.now

    @property
    def ok(self) -> bool:
        return not self.now and not self.since_boot

    def as_dict(self) -> dict[str, object]:
        return {
            "raw": f"0x{self.raw:x}",
            "now": list(self.now),
            "since_boot": list(self.since_boot),
        }


def decode_throttled(raw: int) -> Throttled:
    """Decode bits 0-3 (now) and 16-19 (since boot), e.g. 0x50005."""
    now = tuple(name for bit, name in THROTTLE_BITS.items() if raw & (1 << bit))
    since = tuple(name for bit, name in THROTTLE_BITS.items() if raw & (1 << (bit + 16)))
    return Throttled(raw, now, since)


def throttled(path: str = THROTTLED_PATH, hwmon_root: str = HWMON_ROOT) -> Throttled | None:
    """Under-voltage and throttling flags, or None off a Pi.

    The firmware driver prints the value in hex without ``0x`` (raspberrypi/linux
    drivers/firmware/raspberrypi.c, ``get_throttled_show``). Newer kernels deprecate that
    file for the ``rpi_volt`` hwmon device, which only knows "under-voltage now"
    (``in0_lcrit_alarm``); that is the fallback.
    """
    text = _read(path)
    if text is not None:
        try:
            return decode_throttled(int(text.strip(), 16))
        except ValueError:
            return None
    try:
        devices = sorted(Path(hwmon_root).iterdir())
    except OSError:
        return None
    for device in devices:
        if (_read(device / "name") or "").strip() != "rpi_volt":
            continue
        alarm = (_read(device / "in0_lcrit_alarm") or "").strip()
        if alarm in ("0", "1"):
            return decode_throttled(int(alarm))  # bit 0: under-voltage now
    return None


def disk_free_bytes(path: str | os.PathLike[str]) -> int | None:
    """Bytes an unprivileged writer may still use on the filesystem holding ``path``."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def disk_total_bytes(path: str | os.PathLike[str]) -> int | None:
    """Size of the filesystem holding ``path``."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_blocks * st.f_frsize


def uptime_s(path: str = UPTIME_PATH) -> float | None:
    """Seconds since the machine booted."""
    text = _read(path)
    try:
        return float(text.split()[0]) if text else None
    except (ValueError, IndexError):
        return None


def board_model(path: str = MODEL_PATH) -> str | None:
    """E.g. "Raspberry Pi 5 Model B Rev 1.0"; None off a device-tree board."""
    text = _read(path)
    return text.rstrip("\0\n ") or None if text else None


# -- clock synchronisation ------------------------------------------------------------------

_TIME_ERROR = 5  # adjtimex() return value: clock not synchronised
_STA_UNSYNC = 0x0040


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h> (64-bit glibc; natural alignment adds the padding).
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    ]


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """libc, resolved once: ``find_library`` runs ``ldconfig -p`` as a child process each time
    it is called, and the clock check runs every second (issue 18: an idle daemon spawned a
    process per second on a Pi with chrony or before the first sync)."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None


def adjtimex_synced() -> bool | None:
    """The kernel's view via a read-only ``adjtimex()`` (modes = 0); None if unavailable.

    Inside the hardened unit ``ProtectClock=yes`` filters the ``@clock`` syscalls, so this
    returns None there (EPERM) and the timesyncd flag file is what counts (notes §3.2).
    """
    libc = _libc()
    if libc is None:
        return None
    try:
        tx = _Timex()  # zeroed: modes = 0 is a pure query, needs no privilege
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != _TIME_ERROR and not tx.status & _STA_UNSYNC


class SystemTimeSync:
    """``TimeSync`` for the real Pi: the systemd-timesyncd flag file, else ``adjtimex``.

    With chrony or ntpd instead of timesyncd there is no flag file; then the kernel's
    ``STA_UNSYNC`` flag answers, where the sandbox allows the call. Anything else: not synced
    (the safe answer: terminal clocks are then left alone).
    """

    def __init__(self, flag_path: str = TIMESYNCD_FLAG, *, use_adjtimex: bool = True) -> None:
        self.flag_path = flag_path
        self.use_adjtimex = use_adjtimex

    def state(self) -> tuple[bool, str]:
        """Whether synced, and which source said so (for status and doctor)."""
        if os.path.exists(self.flag_path):
            return True, "timesyncd"
        if self.use_adjtimex:
            kernel = adjtimex_synced()
            if kernel is not None:
                return kernel, "adjtimex"
        return False, "unknown"

    def synced(self) -> bool:
        return self.state()[0]


class FileTimeSync:
    """``TimeSync`` that is synced while a file exists: for tests, the demo and the sims."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def synced(self) -> bool:
        return self.path.exists()


class AssumeSynced:
    """``time_sync = "assume"``: for hosts whose clock is trusted by other means."""

    def synced(self) -> bool:
        return True


def make_time_sync(setting: str) -> SystemTimeSync | FileTimeSync | AssumeSynced:
    """The ``[gateway] time_sync`` setting: ``auto``, ``assume``, or a flag file's path."""
    if setting == "auto":
        return SystemTimeSync()
    if setting == "assume":
        return AssumeSynced()
    return FileTimeSync(setting)


# -- what the service user may open (doctor: serial ports, GPIO) -------------------------
def group_name(gid: int) -> str:
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def service_may_open(st: os.stat_result) -> bool:
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
