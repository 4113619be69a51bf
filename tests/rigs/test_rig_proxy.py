"""The fault-injecting TCP proxy: forwarding, latency, blackholes, cuts, refusal."""

from __future__ import annotations

import socket
import time

import pytest


def _recv_exactly(sock: socket.socket, n: int, timeout: float = 15.0) -> bytes:
    sock.settimeout(timeout)
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def _wait(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.01)


def test_forwards_both_ways_in_order_with_latency(echo_server, tcp_proxy):
    server = echo_server()
    proxy = tcp_proxy(server.port)
    proxy.set_latency(0.02)
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        messages = [f"msg-{i:05d};".encode() for i in range(2000)]
        payload = b"".join(messages)
        start = time.monotonic()
        sock.sendall(payload)
        assert _recv_exactly(sock, len(payload)) == payload  # order preserved
        # The delay is a floor, not a timing assertion: nothing can come back sooner.
        assert time.monotonic() - start >= 2 * 0.02 * 0.9
    assert proxy.bytes_up == len(payload) and proxy.bytes_down == len(payload)
    assert proxy.accepted == 1


def test_many_small_messages_with_latency_all_arrive_in_order(echo_server, tcp_proxy):
    server = echo_server(echo=False)
    proxy = tcp_proxy(server.port)
    proxy.set_latency(0.025)
    n = 20_000
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(n):
            sock.send(b"%06d\n" % i)
        _wait(lambda: len(server.snapshot()) == 7 * n)
    assert server.snapshot() == b"".join(b"%06d\n" % i for i in range(n))


def test_blackhole_keeps_the_connection_open_but_stops_traffic(echo_server, tcp_proxy):
    server = echo_server()
    proxy = tcp_proxy(server.port)
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        sock.sendall(b"before")
        assert _recv_exactly(sock, 6) == b"before"
        proxy.blackhole()
        sock.sendall(b"during")  # the send succeeds: nothing tells the client the link is dead
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):  # no data, and no EOF or RST either
            sock.recv(100)
        assert server.snapshot() == b"before"
        assert proxy.connections == 1 and not server.eof.is_set()
        proxy.restore()  # held bytes go through, like TCP retransmissions after the outage
        assert _recv_exactly(sock, 6) == b"during"


def test_blackhole_discard_drops_the_held_bytes(echo_server, tcp_proxy):
    server = echo_server()
    proxy = tcp_proxy(server.port)
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        sock.sendall(b"a")
        assert _recv_exactly(sock, 1) == b"a"
        proxy.blackhole()
        sock.sendall(b"lost")
        _wait(lambda: proxy.held_bytes == 4)
        assert proxy.bytes_up == 1
        proxy.restore(discard=True)
        sock.sendall(b"b")
        assert _recv_exactly(sock, 1) == b"b"
    assert server.snapshot() == b"ab"


def test_blackhole_acks_passes_uplink_only(echo_server, tcp_proxy):
    server = echo_server()
    proxy = tcp_proxy(server.port)
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        proxy.blackhole_acks()
        sock.sendall(b"publish")
        _wait(lambda: server.snapshot() == b"publish")  # reaches the broker side
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):  # but the answer never comes back
            sock.recv(100)
        proxy.restore()
        assert _recv_exactly(sock, 7) == b"publish"


def test_cut_resets_connections(echo_server, tcp_proxy):
    server = echo_server()
    proxy = tcp_proxy(server.port)
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        sock.sendall(b"x")
        assert _recv_exactly(sock, 1) == b"x"
        proxy.cut()
        sock.settimeout(5)
        with pytest.raises(ConnectionResetError):
            sock.recv(100)
    server.eof.wait(5)
    assert server.eof.is_set()


def test_refuse_then_restore(echo_server, tcp_proxy):
    server = echo_server()
    proxy = tcp_proxy(server.port)
    port = proxy.port
    proxy.refuse()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
    proxy.restore()
    assert proxy.port == port
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"ok")
        assert _recv_exactly(sock, 2) == b"ok"


def test_unreachable_target_resets_the_client(tcp_proxy, free_port):
    proxy = tcp_proxy(free_port)  # nothing listens there
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        sock.settimeout(5)
        with pytest.raises((ConnectionResetError, ConnectionError)):
            if sock.recv(1) == b"":
                raise ConnectionError("closed")


def test_mqtt_through_a_blackholed_proxy(mosquitto, tcp_proxy, subscriber, mqtt_client):
    proxy = tcp_proxy(mosquitto.port)
    sub = subscriber(proxy.port, "bh/#")
    pub = mqtt_client(mosquitto.port)
    pub.next("conn")
    proxy.blackhole()
    pub.client.publish("bh/x", b"while dark", qos=1)
    with pytest.raises(TimeoutError):
        sub.wait_for(lambda ms: len(ms) > 0, timeout=1.0)
    assert proxy.connections == 1
    proxy.restore()
    sub.wait_for(lambda ms: any(m.payload == b"while dark" for m in ms))
