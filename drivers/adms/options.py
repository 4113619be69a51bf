"""Options of push terminals (``driver = "adms"``) and of the one ``[adms]`` listener."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from gateway.config.validate import Fields

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: PRODUCT.md §8: without ``allow_networks``, only private ranges (and loopback) may knock.
PRIVATE_NETWORKS = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
)
DEFAULT_LISTEN = "0.0.0.0:8081"


@dataclass(frozen=True)
class AdmsOptions:
    """The ``[[terminals]]`` keys of a push terminal."""

    serial_number: str
    sync_clock: bool = True
    delay_s: int = 10  # the poll period we announce (``Delay``); online = polled in 3 Delays
    reconcile_interval_s: float = 3600.0  # VERIFY SUM ATTLOG period; 0 = off
    resend_days: int = 7  # the window a reconciliation mismatch asks the terminal to re-send


@dataclass(frozen=True)
class ListenerOptions:
    """The ``[adms]`` table."""

    # The terminals are on the LAN and connect to us; allow_networks guards the sources.
    host: str = "0.0.0.0"  # nosec B104 # noqa: S104
    port: int = 8081
    allow_networks: tuple[IpNetwork, ...] = tuple(ipaddress.ip_network(n) for n in PRIVATE_NETWORKS)
    max_body_bytes: int = 8 * 1024 * 1024
    max_connections: int = 64
    max_per_address: int = 16
    request_timeout_s: float = 30.0
    ack_timeout_s: float = 30.0
    error_delay_s: int = 30

    def allowed(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == n.version and ip in n for n in self.allow_networks)


def parse_options(fields: Fields) -> AdmsOptions | None:
    start = len(fields.issues)
    sn = fields.str("serial_number")
    sync = fields.bool("sync_clock", True)
    delay = fields.int("delay_s", 10, min=1, max=600)
    recon = fields.number("reconcile_interval_s", 3600.0, min=0, max=7 * 86400)
    resend = fields.int("resend_days", 7, min=1, max=3650)
    if sn is not None:
        from drivers.adms.protocol import valid_sn

        if not valid_sn(sn):
            fields.error("serial_number", f"expected 1-64 letters, digits, '-', '_', got {sn!r}")
    if len(fields.issues) > start or sn is None:
        return None
    return AdmsOptions(sn, sync, delay, recon, resend)


def parse_listener(fields: Fields) -> ListenerOptions | None:
    """Validate ``[adms]`` (gateway.config.loader calls this; every issue with its path)."""
    start = len(fields.issues)
    listen = fields.str("listen", DEFAULT_LISTEN)
    host, port = DEFAULT_LISTEN.rsplit(":", 1)[0], 8081  # the default: all interfaces
    if listen is not None:
        h, sep, p = listen.rpartition(":")
        if not sep or not p.isdigit() or not 0 < int(p) < 65536:
            fields.error(
                "listen", f'expected "address:port" such as "{DEFAULT_LISTEN}", got {listen!r}'
            )
        else:
            host, port = h.strip("[]") or "0.0.0.0", int(p)  # nosec B104 # noqa: S104
    nets: list[IpNetwork] = []
    fields.ignore("allow_networks")
    raw = fields.table.get("allow_networks", list(PRIVATE_NETWORKS))
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        fields.error("allow_networks", 'expected a list of networks such as ["192.168.1.0/24"]')
    else:
        for text in raw:
            try:
                nets.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                fields.error("allow_networks", f"not a network: {text!r}")
    opts = ListenerOptions(
        host=host,
        port=port,
        allow_networks=tuple(nets),
        max_body_bytes=fields.int("max_body_bytes", 8 * 1024 * 1024, min=4096, max=256 * 2**20),
        max_connections=fields.int("max_connections", 64, min=2, max=4096),
        max_per_address=fields.int("max_per_address", 16, min=1, max=4096),
        request_timeout_s=fields.number("request_timeout_s", 30.0, min=1, max=600),
        ack_timeout_s=fields.number("ack_timeout_s", 30.0, min=1, max=600),
        error_delay_s=fields.int("error_delay_s", 30, min=1, max=3600),
    )
    fields.done()
    return opts if len(fields.issues) == start else None
