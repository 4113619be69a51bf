"""An in-process TCP proxy that injects link faults between a client and a broker.

``TcpProxy(target_host, target_port)`` listens on 127.0.0.1 and forwards every accepted
connection to the target. Its controls emulate what a branch office's WAN does to the gateway
(notes/store-and-forward.md §5.2; no root, no netem needed):

* ``set_latency(s)``: one-way delay per direction, order preserved. Each direction is a timed
  FIFO flushed by one timer (no sleep per chunk), so a 25 ms delay (50 ms RTT) still carries
  tens of thousands of small MQTT messages per second.
* ``blackhole()`` / ``blackhole_acks()`` / ``blackhole_uplink()``: stop forwarding (both, only
  broker-to-client, only client-to-broker) without closing anything: a silent, half-open link.
  Bytes are held, like segments TCP keeps retransmitting; ``restore()`` delivers them in order
  (a client that gave up meanwhile then meets a reset), unless ``discard=True`` drops them.
  Held bytes beyond a bound stop the proxy reading, so senders fill their socket buffers.
* ``cut()``: reset every connection (RST, via SO_LINGER 0); ``refuse()``: close the listening
  socket, so new connections are refused; ``restore()`` undoes both blackholes and refusal.

The proxy runs an asyncio loop on its own named thread; the control methods are thread-safe and
take effect before they return.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

import structlog

__all__ = ["Direction", "TcpProxy"]

log = structlog.get_logger(__name__)

T = TypeVar("T")
Direction = str  # "up" (client to target) or "down" (target to client)
_HOLD_LIMIT = 16 * 1024 * 1024  # held bytes per direction before the proxy stops reading
_EOF, _RESET = object(), object()


@dataclass
class _Stats:
    bytes_up: int = 0
    bytes_down: int = 0
    accepted: int = 0


class _Pipe:
    """One direction of one connection: a timed FIFO from a source to a sink transport."""

    def __init__(self, proxy: TcpProxy, name: Direction) -> None:
        self.proxy, self.name = proxy, name
        self.queue: deque[tuple[float, Any]] = deque()
        self.held = 0
        self.timer: asyncio.TimerHandle | None = None
        self.source: asyncio.Transport | None = None
        self.sink: asyncio.Transport | None = None
        self.source_paused = False
        self.sink_full = False
        self.done = False

    def push(self, item: Any) -> None:
        loop = self.proxy._loop
        self.queue.append((loop.time() + self.proxy._latency[self.name], item))
        if isinstance(item, bytes):
            self.held += len(item)
        self._throttle()
        self.schedule()

    def schedule(self) -> None:
        if self.timer is not None or not self.queue or self.name in self.proxy._holes:
            return
        self.timer = self.proxy._loop.call_at(self.queue[0][0], self.flush)

    def flush(self) -> None:
        self.timer = None
        if self.name in self.proxy._holes or self.sink is None:
            return
        now = self.proxy._loop.time()
        chunks: list[bytes] = []
        while self.queue and self.queue[0][0] <= now:
            _, item = self.queue.popleft()
            if isinstance(item, bytes):
                chunks.append(item)
                continue
            self._write(chunks)
            chunks = []
            self._end(item)
            return
        self._write(chunks)
        self._throttle()
        self.schedule()

    def _write(self, chunks: list[bytes]) -> None:
        if not chunks or self.sink is None or self.sink.is_closing():
            return
        data = b"".join(chunks)
        self.held -= len(data)
        # Count before writing: the peer (another thread) may read the bytes and then the
        # counter before this thread gets to run again.
        if self.name == "up":
            self.proxy._stats.bytes_up += len(data)
        else:
            self.proxy._stats.bytes_down += len(data)
        self.sink.write(data)

    def _end(self, item: object) -> None:
        self.queue.clear()
        self.held = 0
        self.done = True
        sink = self.sink
        if sink is None or sink.is_closing():
            return
        if item is _RESET:
            _abort_with_rst(sink)
        elif sink.can_write_eof():
            sink.write_eof()

    def drop_held(self) -> None:
        keep = deque(entry for entry in self.queue if not isinstance(entry[1], bytes))
        self.queue, self.held = keep, 0
        self._throttle()

    def _throttle(self) -> None:
        # Backpressure: stop reading the source while the sink is full or too much is held.
        want_paused = self.sink_full or self.held > _HOLD_LIMIT
        src = self.source
        if src is None or src.is_closing() or want_paused == self.source_paused:
            return
        if want_paused:
            src.pause_reading()
        else:
            src.resume_reading()
        self.source_paused = want_paused


class _Side(asyncio.Protocol):
    """Protocol for one socket; feeds the pipe that carries its bytes to the other socket."""

    def __init__(self, conn: _Conn, outgoing: _Pipe, incoming: _Pipe) -> None:
        self.conn, self.outgoing, self.incoming = conn, outgoing, incoming

    def data_received(self, data: bytes) -> None:
        self.outgoing.push(data)

    def eof_received(self) -> bool:
        self.outgoing.push(_EOF)
        return True  # keep the transport open for the other direction (half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.outgoing.done:
            self.outgoing.push(_RESET if exc is not None else _EOF)
        self.conn.side_closed()

    def pause_writing(self) -> None:
        self.incoming.sink_full = True
        self.incoming._throttle()

    def resume_writing(self) -> None:
        self.incoming.sink_full = False
        self.incoming._throttle()


class _Conn:
    def __init__(self, proxy: TcpProxy) -> None:
        self.proxy = proxy
        self.up, self.down = _Pipe(proxy, "up"), _Pipe(proxy, "down")
        self.client: asyncio.Transport | None = None
        self.target: asyncio.Transport | None = None

    def side_closed(self) -> None:
        if self.up.done and self.down.done:
            self.close(reset=False)

    def close(self, *, reset: bool) -> None:
        for pipe in (self.up, self.down):
            if pipe.timer is not None:
                pipe.timer.cancel()
                pipe.timer = None
        for transport in (self.client, self.target):
            if transport is not None and not transport.is_closing():
                _abort_with_rst(transport) if reset else transport.close()
        self.proxy._conns.discard(self)


class _ClientSide(_Side):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        conn = self.conn
        conn.client = transport
        conn.up.source = conn.down.sink = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.proxy._conns.add(conn)
        conn.proxy._stats.accepted += 1
        transport.pause_reading()  # until the target side is connected
        conn.up.source_paused = True
        conn.proxy._loop.create_task(self._connect_target())

    async def _connect_target(self) -> None:
        conn, proxy = self.conn, self.conn.proxy
        try:
            await proxy._loop.create_connection(
                lambda: _TargetSide(conn, conn.down, conn.up), proxy.target_host, proxy.target_port
            )
        except OSError as err:
            log.debug("proxy_target_unreachable", error=str(err))
            conn.close(reset=True)
            return
        conn.up._throttle()
        conn.up.schedule()


class _TargetSide(_Side):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        conn = self.conn
        conn.target = transport
        conn.down.source = conn.up.sink = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # MQTT packets are small; do not let Nagle add a delay the link does not have.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _abort_with_rst(transport: asyncio.Transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class TcpProxy:
    """A fault-injecting TCP forwarder; see the module docstring."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_port: int = 0,
        listen_host: str = "127.0.0.1",
        name: str | None = None,
    ) -> None:
        self.target_host, self.target_port = target_host, target_port
        self.listen_host = listen_host
        self._latency: dict[Direction, float] = {"up": 0.0, "down": 0.0}
        self._holes: set[Direction] = set()
        self._conns: set[_Conn] = set()
        self._stats = _Stats()
        self._server: asyncio.Server | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=name or f"tcp-proxy-{target_port}", daemon=True
        )
        self._thread.start()
        self.port = self._call(self._listen(listen_port))

    # -- plumbing ----------------------------------------------------------------------------

    def _call(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _run(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        if threading.current_thread() is self._thread:
            return fn()
        fut: Future[T] = Future()

        def job() -> None:
            try:
                fut.set_result(fn())
            except BaseException as err:
                fut.set_exception(err)

        self._loop.call_soon_threadsafe(job)
        return fut.result(timeout)

    async def _listen(self, port: int) -> int:
        def accept() -> _ClientSide:
            conn = _Conn(self)
            return _ClientSide(conn, conn.up, conn.down)

        self._server = await self._loop.create_server(
            accept, self.listen_host, port, reuse_address=True
        )
        sock = self._server.sockets[0]
        return int(sock.getsockname()[1])

    # -- controls ----------------------------------------------------------------------------

    def set_latency(self, one_way_s: float, direction: Direction = "both") -> None:
        """Delay every chunk by ``one_way_s`` in each direction (RTT = 2x); order is kept."""
        dirs = ("up", "down") if direction == "both" else (direction,)

        def apply() -> None:
            for d in dirs:
                self._latency[d] = max(0.0, float(one_way_s))

        self._run(apply)

    def blackhole(self, direction: Direction = "both") -> None:
        """Stop forwarding (sockets stay open): a silent link, as when a WAN drops packets."""
        dirs = {"up", "down"} if direction == "both" else {direction}
        self._run(lambda: self._holes.update(dirs))

    def blackhole_acks(self) -> None:
        """Stop only broker-to-client traffic: publishes arrive, PUBACKs are lost."""
        self.blackhole("down")

    def blackhole_uplink(self) -> None:
        """Stop only client-to-broker traffic."""
        self.blackhole("up")

    def restore(self, *, discard: bool = False) -> None:
        """End blackholes (delivering held bytes, or dropping them if ``discard``) and refusal."""

        def apply() -> None:
            self._holes.clear()
            for conn in list(self._conns):
                for pipe in (conn.up, conn.down):
                    if discard:
                        pipe.drop_held()
                    pipe.schedule()

        self._run(apply)
        if self._server is None:
            self._call(self._listen(self.port))

    def cut(self) -> None:
        """Reset every open connection (RST both ways); new connections are still accepted."""

        def apply() -> None:
            for conn in list(self._conns):
                conn.close(reset=True)

        self._run(apply)

    def refuse(self) -> None:
        """Stop accepting: close the listening socket, so connects are refused."""

        async def close() -> None:
            if self._server is not None:
                self._server.close()
                self._server = None

        self._call(close())

    def stop(self) -> None:
        """Close everything and end the proxy's thread; idempotent."""
        if not self._thread.is_alive():
            return
        self.refuse()
        self.cut()

        async def cancel_tasks() -> None:
            me = asyncio.current_task()
            for task in asyncio.all_tasks():
                if task is not me:
                    task.cancel()

        self._call(cancel_tasks())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    # -- figures -----------------------------------------------------------------------------

    @property
    def bytes_up(self) -> int:
        """Bytes written to the target so far."""
        return self._stats.bytes_up

    @property
    def bytes_down(self) -> int:
        """Bytes written back to clients so far."""
        return self._stats.bytes_down

    @property
    def held_bytes(self) -> int:
        """Bytes read but not yet forwarded (delayed or blackholed), all connections."""
        return self._run(lambda: sum(c.up.held + c.down.held for c in self._conns))

    @property
    def accepted(self) -> int:
        """Connections accepted so far."""
        return self._stats.accepted

    @property
    def connections(self) -> int:
        """Connections open now."""
        return self._run(lambda: len(self._conns))

    @property
    def address(self) -> tuple[str, int]:
        return self.listen_host, self.port

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<TcpProxy {self.listen_host}:{self.port} -> {self.target_host}:{self.target_port}>"
