"""The site inside the container for tests/systemd: its config, simulators, and helpers.

A ZK simulator (``gatewayctl sim zk``), a serial reader on a socat pty (group dialout 0660,
like a USB adapter) fed through a fifo, a recording ``mosquitto_sub`` on the container's own
broker, and a second, slow ZK terminal with a big log for the watchdog check.
"""

from __future__ import annotations

import json
import os

from tests.systemd.container import Container, wait_until

UNIT = "attendance-gateway"
GW = "/opt/attendance-gateway/venv/bin/gatewayctl"
VENV_PY = "/opt/attendance-gateway/venv/bin/python"
DATA = "/var/lib/attendance-gateway"
DB = f"{DATA}/gateway.db"
SUB_LOG = "/root/sub.log"
CARDS_FIFO = "/run/attgw-cards"
ZK_RECORDS = 20
# The long download: slow replies (2 s each) over ~30 chunks of 65 472 bytes: about 70 s,
# more than two WatchdogSec=30s periods and three watchdog_stall_s periods.
BIG_RECORDS = 48_000
BIG_DELAY_S = 2.0
# ATTGW_SYSTEMD_STALL_S=3600 checks the rest of the rig while the download fix is not merged.
STALL_S = int(os.environ.get("ATTGW_SYSTEMD_STALL_S", "20"))

CONFIG = f"""\
[gateway]
id = "ct-gw1"
timezone = "UTC"
# No time service can sync inside a --private-network container (timesyncd does not run in
# containers): "auto" would rightly show fault 5 here; docs/install.md says how it clears.
time_sync = "assume"
watchdog_stall_s = {STALL_S}

[mqtt]
host = "127.0.0.1"
port = 1883
tls = false

[store]
# Every 36 s, so backups run during the long download below.
backup_interval_h = 0.01
backup_keep = 3

[leds]
backend = "null"

[[terminals]]
name = "lobby"
driver = "zk"
host = "127.0.0.1"
port = 4370
poll_interval_s = 300

[[terminals]]
name = "side-door"
driver = "serial"
port = "/run/attgw-reader"
baudrate = 9600
framing = "line"
debounce_s = 1
"""

BIG_TERMINAL = """
[[terminals]]
name = "warehouse"
driver = "zk"
host = "127.0.0.1"
port = 4371
poll_interval_s = 3600
live = false
"""

BIG_SIM = f"""
import signal, threading
from drivers.zk_terminal.sim.device import ZkSimulator
sim = ZkSimulator("127.0.0.1", 4371, "tcp", serial="SIMBIG0000001", capacity=100_000)
sim.bulk_load({BIG_RECORDS}, users=200)
sim.inject("slow", delay_s={BIG_DELAY_S})
sim.start()
print("big zk simulator ready", sim.records, flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait()
sim.stop()
"""

STATE: dict[str, object] = {"execstart_dropin": None, "cards": 0}


def report(line: str) -> None:
    """Figures and findings for the run's summary (scripts/test-systemd.sh prints it)."""
    path = os.environ.get("ATTGW_SYSTEMD_REPORT")
    if path:
        with open(path, "a") as fh:
            fh.write(line.rstrip() + "\n")


def q(ct: Container, sql: str) -> str:
    return ct.sh(f'sqlite3 -readonly {DB} "{sql}"').stdout.strip()


def service(ct: Container) -> dict[str, str]:
    return ct.show(
        UNIT, "ActiveState", "SubState", "MainPID", "NRestarts", "StatusText", "Result", "Type"
    )


def wait_active(ct: Container, not_pid: str | None = None, timeout: float = 120) -> dict[str, str]:
    def ok() -> dict[str, str] | None:
        s = service(ct)
        good = s["ActiveState"] == "active" and s["SubState"] == "running"
        return s if good and s["MainPID"] not in ("0", not_pid) else None

    return wait_until(ok, timeout, f"{UNIT} active (running)")  # type: ignore[no-any-return]


def swipe(ct: Container, n: int) -> list[str]:
    """Show ``n`` new cards to the serial reader (socat pty, group dialout 0660)."""
    cards = []
    for _ in range(n):
        STATE["cards"] = int(STATE["cards"]) + 1  # type: ignore[call-overload]
        # The line framing takes 4-32 decimal/hex digits; decimal ids print without zeros.
        cards.append(str(7_100_000 + int(STATE["cards"])))  # type: ignore[call-overload]
    lines = "".join(f"{c}\\r\\n" for c in cards)
    ct.sh(f"printf '{lines}' > {CARDS_FIFO}", timeout=30)
    return cards


def published(ct: Container) -> list[dict[str, object]]:
    """Every punch the container's subscriber received (topic .../punches)."""
    out = ct.sh(f"cat {SUB_LOG} 2>/dev/null || true").stdout
    punches: list[dict[str, object]] = []
    for line in out.splitlines():
        topic, _, payload = line.partition(" ")
        if topic.endswith("/punches"):
            punches.extend(json.loads(payload)["punches"])
    return punches


def start_reader_and_subscriber(ct: Container) -> None:
    ct.sh(
        f"mkfifo -m 0600 {CARDS_FIFO}; "
        # -U: data flows from the fifo into the pty; the pty comes first because opening
        # the fifo blocks until a writer appears.
        "systemd-run -q --unit=attgw-test-reader socat -U "
        "pty,link=/run/attgw-reader,raw,echo=0,group=dialout,mode=660 "
        f"PIPE:{CARDS_FIFO},ignoreeof; "
        "systemd-run -q --unit=attgw-test-sub -p Restart=always -p RestartSec=1 sh -c "
        f'\'exec mosquitto_sub -h 127.0.0.1 -q 1 -c -i attgw-test-sub -v -t "attendance/#" '
        f">> {SUB_LOG}'"
    )
    wait_until(lambda: ct.sh("test -L /run/attgw-reader", check=False).returncode == 0, 30, "pty")


def settled(ct: Container) -> None:
    """The daemon is up and the serial reader is open (cards shown before are not heard)."""
    wait_active(ct)

    def reader_up() -> bool:
        r = ct.sh("cd / && gatewayctl status --json", check=False)
        try:
            terms = json.loads(r.stdout)["terminals"]
        except (ValueError, KeyError):
            return False
        return terms.get("side-door", {}).get("state") in ("online", "open")

    wait_until(reader_up, 90, "the serial reader open")
