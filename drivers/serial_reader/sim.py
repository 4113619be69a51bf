"""A card-reader simulator (product code): for the demo, the tests and a technician's bench.

``ReaderSim`` plays a reader on a pty pair (the gateway opens the slave path, or a stable
``link`` symlink to it, like ``/dev/serial/by-id/…``) or on a TCP port (the gateway opens
``socket://127.0.0.1:PORT``, like a serial-to-Ethernet converter in TCP-server mode). Faults on
demand: noise, split frames, bad checksums, a held card repeating every 50 ms, unplug (pty
master closed / TCP client dropped and the listener closed) and replug (a new pty behind the
same link / the listener back on the same port).

CLI: ``gatewayctl sim serial --framing em4100 --pty`` prints the path to open, then plays a
script (``--script FILE``), a steady rate (``--rate 5``) or commands typed on stdin.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import socket
import sys
import threading
import time
import tty
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from types import FrameType, TracebackType
from typing import TextIO

from drivers.serial_reader import new_codec

#: Bytes a floating or badly terminated RS485 line produces: never STX/ETX/CR/LF/digits, so
#: noise can cost frames but can never forge one.
NOISE_BYTES = bytes([0x00, 0xFF, 0x80, 0xFE, 0xF8, 0xE0, 0xC0, 0x9C, 0xE7, 0x8F])


class ReaderSim:
    """One simulated reader. ``start()`` returns what the gateway should open."""

    def __init__(
        self,
        framing: str = "em4100",
        checksum: str = "none",
        *,
        transport: str = "pty",
        tcp_port: int = 0,
        link: str | None = None,
        seed: int | None = None,
    ) -> None:
        if transport not in ("pty", "tcp"):
            raise ValueError('transport is "pty" or "tcp"')
        self.codec = new_codec(framing, checksum)
        self.framing = framing
        self.transport = transport
        self.link = link
        self.tcp_port = tcp_port
        self.sent_frames = 0
        self.dropped_frames = 0  # written while unplugged (a reader with no host)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._master: int | None = None
        self._slave: int | None = None
        self.slave_path: str | None = None
        self._listener: socket.socket | None = None
        self._clients: list[socket.socket] = []
        self._accept_thread: threading.Thread | None = None
        self.plugged = False

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def path(self) -> str:
        """What to put in ``port =``: the link, the pty slave, or the socket:// URL."""
        if self.transport == "tcp":
            return f"socket://127.0.0.1:{self.tcp_port}"
        return self.link or self.slave_path or ""

    @property
    def port_url(self) -> str:
        """The same as ``path`` (the name ``gatewayctl demo`` reads)."""
        return self.path

    def start(self) -> str:
        self.replug()
        return self.path

    def replug(self) -> None:
        """Plug the reader (back) in: a new pty behind the same link, or the listener back."""
        with self._lock:
            if self.plugged:
                return
            if self.transport == "pty":
                master, slave = os.openpty()
                tty.setraw(slave)  # no echo, no line editing: bytes pass unchanged
                self._master, self._slave = master, slave
                self.slave_path = os.ttyname(slave)
                if self.link:
                    tmp = f"{self.link}.tmp{os.getpid()}"
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
                    os.symlink(self.slave_path, tmp)
                    os.replace(tmp, self.link)  # atomic, like udev updating by-id
            else:
                lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                lsock.bind(("127.0.0.1", self.tcp_port))
                lsock.listen(4)
                self.tcp_port = lsock.getsockname()[1]
                self._listener = lsock
                self._accept_thread = threading.Thread(
                    target=self._accept, args=(lsock,), name="serial-sim-accept", daemon=True
                )
                self._accept_thread.start()
            self.plugged = True

    def unplug(self) -> None:
        """Pull the adapter: the gateway's next read fails and the stable path disappears."""
        with self._lock:
            if not self.plugged:
                return
            self.plugged = False
            if self.transport == "pty":
                if self.link:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.link)
                for fd in (self._master, self._slave):
                    if fd is not None:
                        with contextlib.suppress(OSError):
                            os.close(fd)
                self._master = self._slave = None
            else:
                if self._listener is not None:
                    with contextlib.suppress(OSError):
                        self._listener.shutdown(socket.SHUT_RDWR)
                    self._listener.close()
                    self._listener = None
                for client in self._clients:
                    with contextlib.suppress(OSError):
                        client.shutdown(socket.SHUT_RDWR)
                    client.close()
                self._clients = []
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=5)
            self._accept_thread = None

    def close(self) -> None:
        self.unplug()

    def __enter__(self) -> ReaderSim:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _accept(self, lsock: socket.socket) -> None:
        while True:
            try:
                client, _ = lsock.accept()
            except OSError:
                return  # listener closed: unplugged
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if not self.plugged:
                    client.close()
                    return
                self._clients.append(client)

    def connected(self) -> int:
        """TCP clients connected now (a pty reports 1 while plugged)."""
        with self._lock:
            if self.transport == "pty":
                return int(self.plugged)
            return len(self._clients)

    def wait_connected(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.connected():
                return True
            time.sleep(0.01)
        return False

    # -- writing -------------------------------------------------------------------------
    def write(self, data: bytes) -> bool:
        """Send raw bytes; False (and nothing sent) while unplugged or with no TCP client."""
        with self._lock:
            if not self.plugged:
                return False
            if self.transport == "pty":
                assert self._master is not None
                view = memoryview(data)
                while view:
                    n = os.write(self._master, view)
                    view = view[n:]
                return True
            sent = False
            for client in list(self._clients):
                try:
                    client.sendall(data)
                    sent = True
                except OSError:
                    self._clients.remove(client)
                    client.close()
            return sent

    def _frame(self, frame: bytes) -> bool:
        ok = self.write(frame)
        if ok:
            self.sent_frames += 1
        else:
            self.dropped_frames += 1
        return ok

    def swipe(self, card: str) -> bool:
        """One good frame for ``card`` (the reader's text: 10 hex chars for em4100)."""
        return self._frame(self.codec.encode(card))

    def noise(self, n: int = 16) -> bool:
        return self.write(bytes(self._rng.choice(NOISE_BYTES) for _ in range(n)))

    def split(self, card: str, at: int, pause: float = 0.05) -> bool:
        """A good frame sent in two writes ``pause`` seconds apart, cut after byte ``at``."""
        frame = self.codec.encode(card)
        first = self.write(frame[:at])
        time.sleep(pause)
        return self._frame(frame[at:]) and first

    def bad_checksum(self, card: str) -> bool:
        """A damaged frame the gateway must reject (wrong XOR; junk inside when unchecked)."""
        return self.write(self.codec.corrupt(card))

    def hold(self, card: str, seconds: float, every: float = 0.05) -> int:
        """A card left on an EM4100 module: the same frame every ``every`` s; returns the count."""
        count = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            count += self.swipe(card)
            time.sleep(every)
        return count


class ManualClock:
    """A clock that only moves when told (inject via ``DriverContext(clock=...)``)."""

    def __init__(self, start: datetime | None = None, monotonic: float = 1000.0) -> None:
        self._now = start or datetime(2026, 11, 23, 0, 59, 12, tzinfo=UTC)
        self._mono = monotonic
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> None:
        """Both clocks move forward, as real time does."""
        with self._lock:
            self._mono += seconds
            self._now += timedelta(seconds=seconds)

    def jump_wall(self, seconds: float) -> None:
        """Only the wall clock moves (NTP step, fake-hwclock): monotonic time does not."""
        with self._lock:
            self._now += timedelta(seconds=seconds)


@contextlib.contextmanager
def demo_simulator(rate: float = 1.0, framing: str = "em4100") -> Iterator[ReaderSim]:
    """For ``gatewayctl demo``: a reader on a pty swiping ``rate`` cards/s from 20 employees."""
    sim = ReaderSim(framing)
    sim.start()
    stop = threading.Event()

    def swipe_loop() -> None:
        n = 0
        while not stop.wait(1.0 / rate if rate > 0 else 3600):
            sim.swipe(card_for(framing, n % 20))
            n += 1

    thread = threading.Thread(target=swipe_loop, name="serial-sim-demo", daemon=True)
    thread.start()
    try:
        yield sim
    finally:
        stop.set()
        thread.join(timeout=5)
        sim.close()


# -- CLI ---------------------------------------------------------------------------------
def card_for(framing: str, n: int) -> str:
    """A plausible card text for sequence number ``n``."""
    if framing == "em4100":
        return f"01{(0x00886C00 + n) & 0xFFFFFFFF:08X}"
    return f"{8921324 + n:010d}"


def run_command(sim: ReaderSim, line: str, out: TextIO) -> bool:
    """Execute one script/stdin line; False on ``quit``. ``CARD [DELAY]`` is a swipe."""
    words = line.split("#", 1)[0].split()
    if not words:
        return True
    cmd, args = words[0].lower(), words[1:]
    try:
        if cmd in ("quit", "exit"):
            return False
        if cmd == "wait":  # until the gateway is connected (TCP) or the pty exists
            sim.wait_connected(float(args[0]) if args else 60.0)
        elif cmd == "sleep":
            time.sleep(float(args[0]))
        elif cmd == "noise":
            sim.noise(int(args[0]) if args else 16)
        elif cmd == "split":
            sim.split(args[0], int(args[1]) if len(args) > 1 else 5)
        elif cmd in ("bad", "bad_checksum"):
            sim.bad_checksum(args[0])
        elif cmd == "hold":
            sim.hold(args[0], float(args[1]) if len(args) > 1 else 2.0)
        elif cmd == "unplug":
            sim.unplug()
        elif cmd == "replug":
            sim.replug()
            print(f"replugged: {sim.path}", file=out, flush=True)
        else:
            card = "swipe" if cmd == "swipe" else words[0]
            if cmd == "swipe":
                card, args = args[0], args[1:]
            if not sim.swipe(card):
                print(f"dropped {card}: reader unplugged or no client", file=out, flush=True)
            if args:
                time.sleep(float(args[0]))
    except (IndexError, ValueError) as err:
        print(f"bad command {line.strip()!r}: {err}", file=sys.stderr, flush=True)
    return True


def _commands(lines: Iterable[str], sim: ReaderSim, out: TextIO, stop: threading.Event) -> None:
    for line in lines:
        if stop.is_set() or not run_command(sim, line, out):
            return


def main(argv: list[str] | None = None) -> int:
    """``gatewayctl sim serial``: run a simulated card reader until interrupted."""
    p = argparse.ArgumentParser(prog="gatewayctl sim serial", description=__doc__.split("\n")[0])
    p.add_argument("--framing", choices=("line", "stx_etx", "em4100"), default="em4100")
    p.add_argument("--checksum", choices=("none", "xor", "xor_hex"), default="none")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--pty", action="store_true", help="serve on a pty pair (default)")
    where.add_argument("--tcp", type=int, metavar="PORT", help="serve on 127.0.0.1:PORT")
    p.add_argument("--link", help="also publish the pty slave under this stable path")
    p.add_argument("--script", help="file: one card per line ('CARD [DELAY_S]') or commands")
    p.add_argument("--rate", type=float, help="swipes per second of generated cards")
    p.add_argument("--count", type=int, help="stop generating after this many swipes")
    p.add_argument("--cards", help="comma-separated cards for --rate (default: generated)")
    p.add_argument("--exit-when-done", action="store_true", help="exit after script/count")
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args(argv)
    out = sys.stdout
    sim = ReaderSim(
        args.framing,
        args.checksum,
        transport="tcp" if args.tcp is not None else "pty",
        tcp_port=args.tcp or 0,
        link=args.link,
        seed=args.seed,
    )
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    old = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            sim.start()
        except OSError as err:
            print(f"cannot start the simulator: {err}", file=sys.stderr)
            return 2
        print(sim.path, file=out, flush=True)
        if args.script:
            with open(args.script, encoding="utf-8") as fh:
                _commands(fh, sim, out, stop)
        elif args.rate:
            cards = args.cards.split(",") if args.cards else None
            n = 0
            while not stop.is_set() and (args.count is None or n < args.count):
                sim.swipe(cards[n % len(cards)] if cards else card_for(args.framing, n))
                n += 1
                stop.wait(1.0 / args.rate)
        elif not args.exit_when_done:
            # Faults on demand: commands typed on stdin (noise 16, split CARD 5, bad CARD, …).
            # EOF on stdin (a daemonised sim) leaves it running; only "quit" or a signal stops.
            def _stdin() -> None:
                for line in sys.stdin:
                    if stop.is_set() or not run_command(sim, line, out):
                        stop.set()
                        return

            reader = threading.Thread(target=_stdin, name="serial-sim-stdin", daemon=True)
            reader.start()
        if not args.exit_when_done:
            stop.wait()
        else:
            time.sleep(0.5)  # let the gateway drain the last frames before the pty goes away
    finally:
        sim.close()
        for s, handler in old.items():
            signal.signal(s, handler)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
