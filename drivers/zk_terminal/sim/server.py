"""Network side of the ZK simulator: TCP/UDP listeners, sessions, frame delivery.

Reply discipline follows notes §1.3-1.4: one ``sendall`` per reply (pyzk does a single
``recv`` per command), the request's reply number echoed, the session id assigned on
CMD_CONNECT. Live events go out one at a time, the next only after the client's ACK_OK (or
after ``EVENT_ACK_TIMEOUT_S``), as the 2006 manual §4 describes.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections import deque
from typing import Protocol

import structlog

from drivers.zk_terminal import codec as c
from drivers.zk_terminal.sim.faults import FaultPlan

log = structlog.get_logger(__name__)
EVENT_ACK_TIMEOUT_S = 2.0
TCP_CHUNK_MAX = 0xFFC0


class Device(Protocol):
    """What the network side needs of the simulated terminal (``device.ZkSimulator``)."""

    comm_key: int
    faults: FaultPlan

    def handle(self, s: Session, f: c.Frame) -> None:
        """Answer one command frame (``protocol.handle``)."""


class Session:
    """One client connection (TCP) or peer address (UDP)."""

    def __init__(
        self, server: SimServer, sid: int, sock: socket.socket | None, peer: tuple[str, int] | None
    ) -> None:
        self.server = server
        self.id = sid
        self.sock = sock
        self.peer = peer
        self.authed = server.dev.comm_key == 0
        self.buffer: bytes | None = None
        self.events = 0
        self._queue: deque[bytes] = deque()
        self._waiting_since: float | None = None
        self._wlock = threading.Lock()
        self.closed = False

    @property
    def tcp(self) -> bool:
        return self.sock is not None

    def write(
        self,
        cmd: int,
        reply: int,
        payload: bytes = b"",
        *,
        session: int | None = None,
        raw: bytes | None = None,
    ) -> None:
        sid = self.id if session is None else session
        data = (
            raw
            if raw is not None
            else (
                c.encode_tcp(cmd, sid, reply, payload)
                if self.tcp
                else c.encode_udp(cmd, sid, reply, payload)
            )
        )
        self.send_raw(data)

    def send_raw(self, data: bytes) -> None:
        faults = self.server.dev.faults
        with self._wlock:
            if self.closed:
                return
            try:
                self.server.bytes_sent += len(data)
                if self.sock is None:
                    self.server.udp_send(data, self.peer)
                    return
                pause = faults.take_split()
                if pause is not None and len(data) > 1:
                    cut = max(1, min(len(data) - 1, random.randint(1, 15)))
                    self.sock.sendall(data[:cut])
                    time.sleep(pause)
                    self.sock.sendall(data[cut:])
                else:
                    self.sock.sendall(data)
            except OSError:
                self.close()

    def close(self) -> None:
        self.closed = True
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                self.sock.close()

    # -- live events ---------------------------------------------------------------------
    def queue_event(self, payload: bytes) -> None:
        frame = (c.encode_tcp if self.tcp else c.encode_udp)(
            c.CMD_REG_EVENT, c.EF_ATTLOG, 0, payload
        )
        if self.server.dev.faults.coalesce and self.tcp:
            self._queue.append(frame)
            burst = b"".join(self._queue)
            self._queue.clear()
            self.send_raw(burst)
            return
        self._queue.append(frame)
        self.tick()

    def event_acked(self) -> None:
        self._waiting_since = None
        self.tick()

    def tick(self) -> None:
        now = time.monotonic()
        if self._waiting_since is not None and now - self._waiting_since < EVENT_ACK_TIMEOUT_S:
            return
        if self._queue:
            self._waiting_since = now
            self.send_raw(self._queue.popleft())
        else:
            self._waiting_since = None


class SimServer:
    """Listeners and per-connection threads for one simulator."""

    def __init__(self, dev: Device, host: str, port: int, transport: str) -> None:
        self.dev = dev
        self.host = host
        self.port = port
        self.transport = transport
        self.sessions: dict[int, Session] = {}
        self.lock = threading.RLock()
        self._tcp: socket.socket | None = None
        self._udp: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._running = False
        self.connections = 0
        #: What the terminal spent on its clients: bytes written, seconds answering commands
        #: (from a command's arrival to its last reply byte written; ``bench/zk_touch.py``).
        self.bytes_sent = 0
        self.busy_s = 0.0

    def _serve(self, s: Session, frame: c.Frame) -> None:
        t0 = time.perf_counter()
        try:
            self.dev.handle(s, frame)
        finally:
            self.busy_s += time.perf_counter() - t0

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self._running = True
        if self.transport in ("tcp", "both"):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((self.host, self.port))
            s.listen(16)
            s.settimeout(0.2)
            self.port = s.getsockname()[1]
            self._tcp = s
            self._spawn(self._accept_loop, f"zk-sim-accept-{self.port}")
        if self.transport in ("udp", "both"):
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            u.bind((self.host, self.port))
            u.settimeout(0.2)
            self.port = u.getsockname()[1]
            self._udp = u
            self._spawn(self._udp_loop, f"zk-sim-udp-{self.port}")

    def stop(self) -> None:
        self._running = False
        with self.lock:
            sessions = list(self.sessions.values())
            self.sessions.clear()
        for s in sessions:
            s.close()
        for sock in (self._tcp, self._udp):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        me = threading.current_thread()
        for t in self._threads:
            if t is not me:
                t.join(timeout=5)
        self._threads.clear()
        self._tcp = self._udp = None

    def _spawn(self, target: object, name: str, *args: object) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)  # type: ignore[arg-type]
        self._threads.append(t)
        t.start()

    def udp_send(self, data: bytes, peer: tuple[str, int] | None) -> None:
        if self._udp is not None and peer is not None:
            self._udp.sendto(data, peer)

    def new_session(self, sock: socket.socket | None, peer: tuple[str, int] | None) -> Session:
        with self.lock:
            sid = random.randint(1, 0xFFFE)
            while sid in self.sessions or sid == c.EF_ATTLOG:
                sid = random.randint(1, 0xFFFE)
            s = Session(self, sid, sock, peer)
            self.sessions[sid] = s
            return s

    def drop_session(self, s: Session) -> None:
        with self.lock:
            self.sessions.pop(s.id, None)
        s.close()

    def kick(self, *, live_only: bool) -> None:
        """Close sessions (only those registered for events when ``live_only``)."""
        with self.lock:
            victims = [s for s in self.sessions.values() if s.events or not live_only]
        for s in victims:
            self.drop_session(s)

    def broadcast_event(self, payload: bytes) -> None:
        with self.lock:
            targets = [s for s in self.sessions.values() if s.events & c.EF_ATTLOG]
        for s in targets:
            s.queue_event(payload)

    # -- TCP -----------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        assert self._tcp is not None
        lsock = self._tcp
        while self._running:
            try:
                conn, _ = lsock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connections += 1
            self._spawn(self._conn_loop, f"zk-sim-conn-{self.port}-{self.connections}", conn)

    def _conn_loop(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        session: Session | None = None
        dec = c.FrameDecoder()
        try:
            while self._running:
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    if session is not None:
                        session.tick()
                    continue
                except OSError:
                    return
                if not data:
                    return
                for frame in dec.feed(data):
                    if frame.cmd == c.CMD_CONNECT:
                        if session is not None:
                            self.drop_session(session)
                        session = self.new_session(conn, None)
                    if session is None:
                        # pyzk always connects first; anything else gets an error reply.
                        conn.sendall(c.encode_tcp(c.CMD_ACK_UNAUTH, frame.session, frame.reply))
                        continue
                    self._serve(session, frame)
                    if session.closed:
                        return
        finally:
            if session is not None:
                self.drop_session(session)
            else:
                with contextlib.suppress(OSError):
                    conn.close()

    # -- UDP -----------------------------------------------------------------------------
    def _udp_loop(self) -> None:
        assert self._udp is not None
        usock = self._udp
        by_peer: dict[tuple[str, int], Session] = {}
        while self._running:
            try:
                data, peer = usock.recvfrom(65536)
            except TimeoutError:
                with self.lock:
                    live = list(self.sessions.values())
                for s in live:
                    s.tick()
                continue
            except OSError:
                return
            frame = c.decode_packet(data)
            if frame is None:
                continue
            if frame.cmd == c.CMD_CONNECT:
                old = by_peer.pop(peer, None)
                if old is not None:
                    self.drop_session(old)
                by_peer[peer] = self.new_session(None, peer)
            found = by_peer.get(peer)
            if found is None or found.closed or found.id not in self.sessions:
                by_peer.pop(peer, None)
                with contextlib.suppress(OSError):
                    usock.sendto(c.encode_udp(c.CMD_ACK_UNAUTH, frame.session, frame.reply), peer)
                continue
            self._serve(found, frame)
            if found.closed:
                by_peer.pop(peer, None)
                self.drop_session(found)
