"""Every default value of ``config.toml``, in one place (stdlib only, imported by the CLI).

The loader (``gateway.config.loader``) and the CLI's fast reader (``gateway.cli.local``)
both read these, so a default changed here changes everywhere; docs/config.md lists them.
"""

from __future__ import annotations

CONFIG_PATH = "/etc/attendance-gateway/config.toml"
CONFIG_ENV = "GATEWAY_CONFIG"

# [gateway]
DATA_DIR = "/var/lib/attendance-gateway"
CONTROL_SOCKET = "/run/attendance-gateway/control.sock"
TIME_SYNC = "auto"  # "auto" | "assume" | a path whose existence means "synced"
HEALTH_INTERVAL_S = 60.0
WATCHDOG_STALL_S = 60.0
DB_NAME = "gateway.db"

# [mqtt]
TLS = True
PORT_TLS, PORT_PLAIN = 8883, 1883
TOPIC_PREFIX = "attendance"
KEEPALIVE_S = 30
MAX_INFLIGHT = 20
BATCH_MAX_PUNCHES = 50
MAX_PUBLISH_RATE = 80.0
MAX_MESSAGE_BYTES = 128 * 1024
PROTOCOL = "5"

# [store]
MIN_FREE_DISK_MB = 200
RETAIN_DELIVERED_DAYS = 30
BACKUP_INTERVAL_H = 24.0
BACKUP_KEEP = 7

# [leds]
LED_BACKEND = "rpi_gpio"
HEARTBEAT_PIN, NETWORK_PIN, FAULT_PIN = 17, 27, 22
