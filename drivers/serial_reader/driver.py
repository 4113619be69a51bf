"""The serial / RS485 card-reader driver: pyserial port → codec → debounced punches.

Passive, like every driver (gateway/pipeline/driver.py): ``read(timeout)`` blocks at most about
``timeout`` seconds, the runner thread commits what it returns and owns every retry. A reader
keeps no log, so a decoded frame exists only in this process until the runner commits it:
``read`` never holds a punch back, and when the port dies after frames were decoded in the
same call it returns those punches first and raises on the next call.

Unplug: pyserial reports a vanished USB adapter (or closed pty / dropped TCP converter) as a
``SerialException`` on read ("device reports readiness to read but returned no data", or
"read failed: [Errno 5]"; notes/pi-serial-gpio-systemd.md §1.4). The driver closes the port
and raises ``DriverError(fault=2)``; the runner reopens the stable by-id path with backoff.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import termios
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import serial
import structlog
from serial.rs485 import RS485Settings

from drivers.serial_reader import new_codec
from drivers.serial_reader.cards import normalise
from drivers.serial_reader.codec import Frame
from drivers.serial_reader.options import SerialOptions, parse_options
from gateway.config.validate import Fields
from gateway.errors import DriverError
from gateway.pipeline.driver import JSON, Diagnosis, DriverContext
from gateway.pipeline.ids import uuid7
from gateway.pipeline.punch import Punch

log = structlog.get_logger(__name__)

FAULT_SERIAL = 2  # PRODUCT.md §5: serial port missing
RING_SIZE = 50
#: A frame takes ~15 ms at 9600 baud; bytes of one frame never arrive this far apart, so a
#: partial frame older than this is debris (e.g. a half-sent frame before a noise burst) and
#: must not be glued to the next frame (a phantom card on the unchecked ``line`` framing).
FRAME_GAP_S = 1.0
READ_CHUNK = 4096
_PARITY = {"none": serial.PARITY_NONE, "even": serial.PARITY_EVEN, "odd": serial.PARITY_ODD}
_STOPBITS = {1: serial.STOPBITS_ONE, 2: serial.STOPBITS_TWO}
_BYTESIZE = {5: serial.FIVEBITS, 6: serial.SIXBITS, 7: serial.SEVENBITS, 8: serial.EIGHTBITS}
_PORT_ERRORS = (serial.SerialException, OSError, termios.error, ValueError)


class SerialDriver:
    """One card reader on one serial port (USB-RS485/RS232 adapter, Pi UART, TCP converter)."""

    kind = "serial"
    keeps_log = False

    def __init__(self, name: str, options: SerialOptions, ctx: DriverContext) -> None:
        self.name = name
        self.options = options
        self.ctx = ctx
        self._codec = new_codec(options.framing, options.checksum)
        self._port: serial.SerialBase | None = None
        self._timeout: float | None = None
        self._pending_error: DriverError | None = None
        self._last_byte_at: float | None = None
        self._last_seen: dict[str, float] = {}  # card → monotonic time of its last punch
        self._ring: deque[dict[str, JSON]] = deque(maxlen=RING_SIZE)
        self._lock = threading.Lock()  # probe()/status() may come from another thread
        self._state = "closed"
        self._last_error: str | None = None
        self._warnings: list[str] = []
        self._counts = {"punches": 0, "debounced": 0, "bad_card": 0, "opens": 0, "drops": 0}

    @staticmethod
    def parse_options(fields: Fields) -> SerialOptions | None:
        """Validate this driver's keys of a ``[[terminals]]`` table (see ``options``)."""
        return parse_options(fields)

    # -- lifecycle -----------------------------------------------------------------------
    def open(self) -> None:
        if self._port is not None:
            return
        self._pending_error = None
        opts = self.options
        if not opts.is_url and not os.path.exists(opts.port):
            raise self._fail_open(
                f"serial port missing: {opts.port} does not exist "
                "(adapter unplugged, or wrong by-id path?)"
            )
        kwargs: dict[str, Any] = {
            "baudrate": opts.baudrate,
            "bytesize": _BYTESIZE[opts.bytesize],
            "parity": _PARITY[opts.parity],
            "stopbits": _STOPBITS[opts.stopbits],
            "timeout": 0.5,
        }
        if not opts.is_url:
            # flock(): a technician's miniterm must not steal frames from the daemon (§1.2).
            kwargs["exclusive"] = True
        try:
            port = serial.serial_for_url(opts.port, **kwargs)
        except _PORT_ERRORS as err:
            raise self._fail_open(self._open_message(err)) from err
        self._timeout = 0.5
        # A frame cut off by the unplug must not be completed by bytes after the replug.
        dropped = self._codec.discard_partial()
        if dropped is not None:
            self._remember(dropped)
        self._apply_rs485(port)
        with self._lock:
            self._port = port
            self._state = "open"
            self._last_error = None
            self._counts["opens"] += 1
        log.info("serial port open", terminal=self.name, port=opts.port, framing=opts.framing)

    def close(self) -> None:
        with self._lock:
            port, self._port = self._port, None
            if self._state == "open":
                self._state = "closed"
        if port is not None:
            # Closing a vanished device may fail; it is gone either way.
            with contextlib.suppress(*_PORT_ERRORS):
                port.close()

    # -- reading -------------------------------------------------------------------------
    def read(self, timeout: float) -> Sequence[Punch]:
        if self._pending_error is not None:
            err, self._pending_error = self._pending_error, None
            raise err
        port = self._port
        if port is None:
            raise DriverError(f"serial port {self.options.port} is not open", fault=FAULT_SERIAL)
        data, failure = self._read_bytes(port, max(0.0, timeout))
        punches = self._ingest(data) if data else []
        if failure is not None:
            error = self._lost(failure)
            if punches:  # hand over what was decoded; the runner commits it, then we raise
                self._pending_error = error
                return punches
            raise error
        return punches

    def _read_bytes(
        self, base: serial.SerialBase, timeout: float
    ) -> tuple[bytes, Exception | None]:
        # serial_for_url() is typed as SerialBase; every URL handler implements in_waiting.
        port = cast("serial.Serial", base)
        data = bytearray()
        try:
            if self._timeout != timeout:
                port.timeout = timeout  # reconfigures the tty: only when it changes
                self._timeout = timeout
            chunk = port.read(port.in_waiting or 1)
            data += chunk
            while chunk and len(data) < READ_CHUNK:
                waiting = port.in_waiting
                if not waiting:
                    break
                chunk = port.read(min(waiting, READ_CHUNK))
                data += chunk
        except _PORT_ERRORS as err:
            return bytes(data), err
        return bytes(data), None

    def _ingest(self, data: bytes) -> list[Punch]:
        now_m = self.ctx.clock.monotonic()
        if (
            self._last_byte_at is not None
            and now_m - self._last_byte_at > FRAME_GAP_S
            and self._codec.pending()
        ):
            stale = self._codec.discard_partial()
            if stale is not None:
                self._remember(stale)
        self._last_byte_at = now_m
        punches: list[Punch] = []
        for frame in self._codec.feed(data):
            verdict: str = frame.verdict
            card = normalise(frame.data, self.options.cards) if frame.data is not None else None
            if frame.verdict == "ok" and card is None:
                verdict = "bad_card"
                self._counts["bad_card"] += 1
            elif card is not None:
                if self._debounced(card, now_m):
                    verdict = "debounced"
                    self._counts["debounced"] += 1
                else:
                    punches.append(self._punch(card, frame))
            self._remember(frame, verdict, card)
        self._counts["punches"] += len(punches)
        return punches

    def _debounced(self, card: str, now_m: float) -> bool:
        """One punch per card per window, timed from the punch that opened the window."""
        last = self._last_seen.get(card)
        if last is not None and 0 <= now_m - last < self.options.debounce_s:
            return True
        self._last_seen[card] = now_m
        if len(self._last_seen) > 1024:  # bound memory: forget windows that have closed
            horizon = now_m - self.options.debounce_s
            self._last_seen = {c: t for c, t in self._last_seen.items() if t >= horizon}
        return False

    def _punch(self, card: str, frame: Frame) -> Punch:
        return Punch(
            # Readers keep no log: the id is minted once, here, and is time-ordered (UUIDv7).
            event_id=f"serial-{uuid7()}",
            terminal=self.name,
            driver=self.kind,
            user_id=card,
            time=self.ctx.clock.now().astimezone(self.ctx.timezone),
            state="unknown",
            verify="card",
            clock_synced=self.ctx.clock_synced(),
            extra={"card_raw": frame.data},
        )

    # -- failures ------------------------------------------------------------------------
    def _lost(self, err: Exception) -> DriverError:
        self.close()
        port = self.options.port
        if not self.options.is_url and not os.path.exists(port):
            message = f"serial port missing: {port} vanished (adapter unplugged?)"
        else:
            message = f"serial port {port} failed: {err}"
        with self._lock:
            self._state = "missing"
            self._last_error = message
            self._counts["drops"] += 1
        log.warning("serial port lost", terminal=self.name, port=port, error=str(err))
        return DriverError(message, fault=FAULT_SERIAL)

    def _fail_open(self, message: str) -> DriverError:
        with self._lock:
            self._state = "missing"
            self._last_error = message
        return DriverError(message, fault=FAULT_SERIAL)

    def _open_message(self, err: Exception) -> str:
        port = self.options.port
        code = getattr(err, "errno", None)
        text = str(err)
        if code in (errno.EACCES, errno.EPERM) or "Permission denied" in text:
            return (
                f"permission denied on serial port {port}: the service user needs group "
                f"'dialout' (and DeviceAllow= in the unit) ({text})"
            )
        if code in (errno.EAGAIN, errno.EWOULDBLOCK) or "exclusively lock" in text:
            return (
                f"serial port {port} is locked by another process (miniterm, screen, "
                f"ModemManager?); find it with: fuser -v {port}"
            )
        if code == errno.ENOENT or "No such file" in text:
            return f"serial port missing: {port} does not exist (adapter unplugged?)"
        if isinstance(err, termios.error | ValueError):
            return f"serial port {port} rejected the line settings: {text}"
        return f"cannot open serial port {port}: {text}"

    def _apply_rs485(self, port: serial.SerialBase) -> None:
        rs = self.options.rs485
        if rs is None:
            return
        if not isinstance(port, serial.Serial):
            self._warn(f"rs485 ignored: {self.options.port} is not a local serial port")
            return
        try:
            port.rs485_mode = RS485Settings(
                rts_level_for_tx=rs.rts_level_for_tx,
                rts_level_for_rx=rs.rts_level_for_rx,
                delay_before_tx=rs.delay_before_tx_s,
                delay_before_rx=rs.delay_before_rx_s,
            )
        except _PORT_ERRORS as err:
            # pyserial keeps the rejected settings and would re-apply (and fail) on every
            # later reconfigure (e.g. a timeout change): take them back out.
            with contextlib.suppress(*_PORT_ERRORS):
                port.rs485_mode = None
            # e.g. a pty or most USB adapters: "Failed to set RS485 mode: [Errno 25]".
            self._warn(
                f"rs485 mode not supported by {self.options.port}: {err}; "
                "receiving without it (fine for auto-direction USB adapters)"
            )

    def _warn(self, text: str) -> None:
        log.warning("serial reader warning", terminal=self.name, warning=text)
        with self._lock:
            if text not in self._warnings:
                self._warnings.append(text)

    # -- diagnostics ---------------------------------------------------------------------
    def _remember(self, frame: Frame, verdict: str | None = None, card: str | None = None) -> None:
        entry: dict[str, JSON] = {
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "verdict": verdict or frame.verdict,
            "hex": frame.raw[:64].hex(" "),
            "len": len(frame.raw),
        }
        if card is not None:
            entry["card"] = card
        with self._lock:
            self._ring.append(entry)

    def status(self) -> Mapping[str, JSON]:
        with self._lock:
            out: dict[str, JSON] = {
                # "port_state", not "state": the figures sit next to the runner's own
                # state (online/offline) in the health snapshot (issue 12).
                "port_state": self._state,
                "port": self.options.port,
                **self._codec.counters.as_dict(),
                **self._counts,
            }
            recent = list(self._ring)[-20:]
            warnings = list(self._warnings)
            if self._last_error:
                out["last_error"] = self._last_error
        bad = sum(1 for e in recent if e["verdict"] in ("bad_checksum", "noise", "overflow"))
        if len(recent) >= 10 and bad * 2 > len(recent):
            warnings.append(
                f"{bad} of the last {len(recent)} frames were bad: check baudrate/"
                "parity, termination and A/B wiring"
            )
        out["warnings"] = warnings
        return out

    def diagnose(self) -> Diagnosis:
        from drivers.serial_reader.diagnose import diagnose

        return diagnose(self.options)

    def advice(self) -> str:
        from drivers.serial_reader.diagnose import advice

        return advice(self.options)

    def probe(self) -> Mapping[str, JSON]:
        opts = self.options
        out: dict[str, JSON] = {
            "port": opts.port,
            "settings": {
                "baudrate": opts.baudrate,
                "bytesize": opts.bytesize,
                "parity": opts.parity,
                "stopbits": opts.stopbits,
                "framing": opts.framing,
                "checksum": opts.checksum,
                "data_format": opts.data_format,
                "card_format": opts.card_format,
                "wiegand26": opts.wiegand26,
                "debounce_s": opts.debounce_s,
                "rs485": opts.rs485 is not None,
            },
            "path": _path_info(opts.port) if not opts.is_url else {"url": True},
            "status": dict(self.status()),
        }
        with self._lock:
            out["frames"] = list(self._ring)
        return out


def _path_info(path: str) -> dict[str, JSON]:
    """What a technician checks first: does the node exist, its by-id target, who may open it."""
    info: dict[str, JSON] = {"exists": os.path.exists(path)}
    if os.path.islink(path):
        info["target"] = os.path.realpath(path)
    try:
        st = os.stat(path)
    except OSError as err:
        info["error"] = str(err)
        return info
    info["mode"] = stat.filemode(st.st_mode)
    info["uid"] = st.st_uid
    info["gid"] = st.st_gid
    try:
        import grp
        import pwd

        info["owner"] = pwd.getpwuid(st.st_uid).pw_name
        info["group"] = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        pass
    info["readable"] = os.access(path, os.R_OK)
    info["writable"] = os.access(path, os.W_OK)
    return info
