"""pyzk, hardened at its socket: frame-aligned reads, honest connect errors, no ping.

pyzk master does a single ``recv`` per command and treats it as the whole reply, so a reply
split over two TCP segments is silently misparsed (``read_sizes`` sees 0 records and the
connection desynchronises — notes §0.4, §1.3, verified locally). ``FramedSocket`` gives pyzk
what it assumes: every ``recv`` returns at most one frame, and a whole one when it fits.
pyzk's own protocol logic is untouched; only its socket factory is overridden.

The override relies on pyzk's private name ``_ZK__create_socket`` / ``_ZK__sock`` (pinned
``pyzk-new==0.9.1`` = master 5063798); ``tests/zk/test_client.py`` fails loudly if a pyzk
upgrade renames them.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from zk import ZK

from drivers.zk_terminal.codec import (
    CMD_OPTIONS_RRQ,
    MAGIC,
    decode_packet,
    frame_extent,
    option_value,
)


class FramedSocket:
    """A TCP socket whose ``recv`` never crosses a frame boundary nor returns half a header."""

    def __init__(
        self, sock: socket.socket, timeout: float, on_data: Callable[[], None] | None = None
    ) -> None:
        self._s = sock
        self._timeout = timeout
        self._on_data = on_data
        self._buf = bytearray()
        self._rest = 0  # bytes of the current frame not yet handed out
        #: The last frames received, as short hex heads (for ``probe``).
        self.trace: deque[str] = deque(maxlen=16)

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = 60.0 if timeout is None else timeout

    def connect_ex(self, address: Any) -> int:
        return 0  # already connected by ``HardenedZK._ZK__create_socket``

    def send(self, data: bytes) -> int:
        self._s.settimeout(self._timeout)
        self._s.sendall(data)
        return len(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._s.close()

    def _take(self, n: int) -> bytes:
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def recv(self, n: int) -> bytes:
        deadline = time.monotonic() + self._timeout
        while True:
            buf = self._buf
            if buf and self._rest > 0:
                take = min(n, self._rest, len(buf))
                self._rest -= take
                return self._take(take)
            if buf and self._rest == 0:
                ext = frame_extent(buf)
                if ext is not None and (len(buf) >= ext or len(buf) >= n):
                    take = min(ext, n)
                    self._rest = ext - take
                    pkt = decode_packet(bytes(buf[8:ext])) if len(buf) >= ext else None
                    head = f"cmd={pkt.cmd} len={ext}" if pkt else f"partial len={ext}"
                    self.trace.append(f"{head} {bytes(buf[: min(ext, 24)]).hex()}")
                    return self._take(take)
                if ext is None and (len(buf) >= 8 or not MAGIC.startswith(bytes(buf[:4]))):
                    # Not a frame start: hand the bytes over up to the next magic so pyzk
                    # reports "TCP packet invalid" and the driver reconnects.
                    idx = buf.find(MAGIC, 1)
                    return self._take(min(n, idx if idx > 0 else len(buf)))
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out waiting for the terminal")
            self._s.settimeout(left)
            chunk = self._s.recv(max(n, 65536))
            if not chunk:
                if buf:
                    return self._take(min(n, len(buf)))
                # pyzk's __recieve_raw_data loops ``while size > 0: recv(size)`` and spins
                # forever on the b"" of a closed connection (found with the simulator's
                # drop_mid_download fault): make EOF an error instead.
                raise ConnectionResetError("the terminal closed the connection")
            buf += chunk
            if self._on_data is not None:
                self._on_data()  # a long download is moving: feeds the watchdog (issue 12)


class _ReportingUdp:
    """A UDP socket whose every datagram received reports progress (issue 12: a long log
    download over UDP keeps the watchdog fed too). pyzk calls only these four methods."""

    def __init__(self, sock: socket.socket, on_data: Callable[[], None]) -> None:
        self._s = sock
        self._on_data = on_data

    def recv(self, n: int) -> bytes:
        data = self._s.recv(n)
        self._on_data()
        return data

    def sendto(self, data: bytes, address: Any) -> int:
        return self._s.sendto(data, address)

    def settimeout(self, timeout: float | None) -> None:
        self._s.settimeout(timeout)

    def close(self) -> None:
        self._s.close()


class _NoProbe:
    """Replaces ``ZK_helper``: no ``ping`` subprocess, no throw-away TCP probe (notes §1.2)."""

    def test_ping(self) -> bool:
        return True

    def test_tcp(self) -> int:
        return 0


class HardenedZK(ZK):  # type: ignore[misc]  # pyzk ships no type information
    """pyzk's ``ZK`` with a frame-aligned TCP socket and a real connect error."""

    _on_data: Callable[[], None] | None = None

    def __init__(
        self,
        host: str,
        port: int,
        timeout: float,
        password: int,
        force_udp: bool,
        *,
        on_data: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(
            host,
            port=port,
            timeout=timeout,
            password=password,
            force_udp=force_udp,
            ommit_ping=True,
        )
        # pyzk's constructor opens a UDP socket that connect() replaces without closing.
        with contextlib.suppress(OSError):
            self._ZK__sock.close()
        self.helper = _NoProbe()
        self.framed: FramedSocket | None = None
        self._on_data = on_data
        self._raw: socket.socket | None = None

    def _ZK__create_socket(self) -> None:  # overrides pyzk's private socket factory
        self.close_socket()
        timeout = self._ZK__timeout
        if self.tcp:
            # pyzk ignores connect_ex's result, so a refused connection surfaced later as
            # "Broken pipe" (notes §1.2); create_connection raises at once instead.
            raw = socket.create_connection(self._ZK__address, timeout=timeout)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._raw = raw
            framed = FramedSocket(raw, timeout, self._on_data)
            self.framed = framed
            self._ZK__sock = framed
        else:
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.settimeout(timeout)
            self._raw = udp
            # pyzk's attribute holds either kind of socket
            plain: Any = udp if self._on_data is None else _ReportingUdp(udp, self._on_data)
            self._ZK__sock = plain

    def close_socket(self) -> None:
        """Close the socket whatever state pyzk is in (its ``disconnect`` may not)."""
        if self._raw is not None:
            with contextlib.suppress(OSError):
                self._raw.close()
            self._raw = None
        self.is_connect = False

    def option(self, key: str) -> str:
        """One ``CMD_OPTIONS_RRQ`` value (``~OEMVendor``, ``~PIN2Width``…), as pyzk's own
        ``get_serialnumber`` reads ``~SerialNumber``; raises if the terminal refuses it."""
        reply = self._ZK__send_command(CMD_OPTIONS_RRQ, key.encode("ascii") + b"\x00", 1024)
        if not reply.get("status"):
            raise ValueError(f"terminal refused option {key}")
        return option_value(bytes(self._ZK__data))

    def trace(self) -> list[str]:
        return list(self.framed.trace) if self.framed is not None else []
