"""Options of a ``driver = "zk"`` terminal: its keys of one ``[[terminals]]`` table."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config.validate import Fields


@dataclass(frozen=True)
class ZkOptions:
    """The ``[[terminals]]`` keys of a ``driver = "zk"`` terminal."""

    host: str
    port: int = 4370
    transport: str = "tcp"
    password: int = 0
    poll_interval_s: float = 300.0
    live: bool = True
    sync_clock: bool = True
    max_clock_skew_s: float = 60.0
    timeout_s: float = 10.0
    #: The serial the terminal must answer with; another one is a swapped or re-addressed
    #: terminal (issue 14): fault 1, nothing read. None: any serial.
    serial_number: str | None = None
    #: The safety period of full downloads when the cheap check finds nothing new (issue 14).
    full_download_interval_s: float = 21600.0

    def __repr__(self) -> str:  # the comm key is a secret: never in logs or reprs
        return (
            f"ZkOptions(host={self.host!r}, port={self.port}, transport={self.transport!r},"
            f" password=***, poll_interval_s={self.poll_interval_s}, live={self.live})"
        )


def parse_options(fields: Fields) -> ZkOptions | None:
    start = len(fields.issues)
    host = fields.str("host")
    port = fields.int("port", 4370, min=1, max=65535)
    transport = fields.choice("transport", ("tcp", "udp"), "tcp")
    password = fields.int("password", 0, min=0, max=0xFFFFFFFF)
    poll = fields.number("poll_interval_s", 300.0, min=5, max=86400)
    live = fields.bool("live", True)
    sync = fields.bool("sync_clock", True)
    skew = fields.number("max_clock_skew_s", 60.0, min=1, max=86400)
    timeout = fields.number("timeout_s", 10.0, min=0.5, max=300)
    serial = fields.str("serial_number", None)
    full = fields.number("full_download_interval_s", 21600.0, min=0, max=7 * 86400)
    if len(fields.issues) > start or host is None:
        return None
    return ZkOptions(
        host,
        port,
        transport,
        password,
        poll,
        live,
        sync,
        skew,
        timeout,
        serial.strip() if serial else None,
        full,
    )
