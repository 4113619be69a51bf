"""Fixtures for the rigs' own tests: a recording paho client and a TCP echo server."""

from __future__ import annotations

import queue
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion


@dataclass
class Recorder:
    """A paho client whose callbacks only enqueue (the pattern of notes §2.1)."""

    client: mqtt.Client
    events: queue.Queue[tuple[Any, ...]] = field(default_factory=queue.Queue)

    def next(self, kind: str, timeout: float = 15.0) -> tuple[Any, ...]:
        """The next event of ``kind`` ("conn", "disc", "pub"), skipping others."""
        while True:
            event = self.events.get(timeout=timeout)
            if event[0] == kind:
                return event


@pytest.fixture
def mqtt_client() -> Iterator[Callable[..., Recorder]]:
    """``mqtt_client(port, username=, password=, ca_file=, connect=True)`` -> Recorder."""
    made: list[mqtt.Client] = []

    def make(
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
        connect: bool = True,
        protocol: int = mqtt.MQTTv5,
    ) -> Recorder:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
        rec = Recorder(client)
        client.on_connect = lambda c, u, f, rc, p: rec.events.put(("conn", rc, p))
        client.on_disconnect = lambda c, u, f, rc, p: rec.events.put(("disc", rc, p))
        client.on_publish = lambda c, u, mid, rc, p: rec.events.put(("pub", mid, rc))
        client.reconnect_delay_set(0.1, 0.5)
        if username is not None:
            client.username_pw_set(username, password)
        if ca_file is not None:
            client.tls_set(ca_certs=str(ca_file))
        made.append(client)
        if connect:
            client.connect("127.0.0.1" if ca_file is None else "localhost", port, keepalive=10)
            client.loop_start()
        return rec

    yield make
    for client in made:
        client.disconnect()
        client.loop_stop()


class EchoServer:
    """Accepts connections; echoes (or, with ``echo=False``, only records) what it reads."""

    def __init__(self, echo: bool = True) -> None:
        self.echo = echo
        self.received = bytearray()
        self.eof = threading.Event()
        self.accepted = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="echo-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self._sock.accept()
        except OSError:
            return
        self._conns.append(conn)
        self.accepted.set()
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                break
            if not data:
                break
            with self._lock:
                self.received += data
            if self.echo:
                try:
                    conn.sendall(data)
                except OSError:
                    break
        self.eof.set()

    def snapshot(self) -> bytes:
        with self._lock:
            return bytes(self.received)

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (Linux)
        except OSError:
            pass
        self._sock.close()
        for conn in self._conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        self._thread.join(5)


@pytest.fixture
def echo_server() -> Iterator[Callable[..., EchoServer]]:
    servers: list[EchoServer] = []

    def make(echo: bool = True) -> EchoServer:
        server = EchoServer(echo)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()
