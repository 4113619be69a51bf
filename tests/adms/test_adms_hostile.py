"""Hostile clients (issue 15): slowloris, a 100 MB body, binary garbage, oversized heads and a
connection flood do not stop the listener, nor another terminal's punches.

Counts are kept small enough for a quick test (a flood of 600 connections, not 10 000); the
bounds they hit are the same (per-address and total caps, the request deadline).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from datetime import datetime

from tests.pipeline.harness import wait_until

HOSTILE = "127.0.0.1"  # the simulated terminal knocks from 127.0.0.2


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(HOSTILE, 0))
    return s


def _closed_by_server(s: socket.socket, trickle: bytes = b"") -> bool:
    """Keep trickling ``trickle`` one byte at a time until the server hangs up."""
    deadline = time.monotonic() + 60
    s.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            if trickle:
                s.send(trickle[:1])
                trickle = trickle[1:] or b"X"
            if s.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


def _answer(s: socket.socket) -> bytes:
    s.settimeout(30)
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except OSError:
        pass
    return data


def test_hostile_clients_do_not_stop_the_listener_or_another_terminal(rig):
    r = rig(request_timeout_s=3.0, max_connections=48, max_per_address=16)
    r.terminal("door", "SN0201")
    t = r.sim("SN0201")
    t.fill(200, datetime(2026, 11, 20, 8, 0))
    wait_until(lambda: r.runners["door"].state.state == "online", 30, "online")
    port = r.listener.port
    stop_punching = threading.Event()

    def punch_all_along() -> None:
        i = 0
        while not stop_punching.wait(0.05):
            i += 1
            t.punch(str(5000 + i % 50), i % 2)

    puncher = threading.Thread(target=punch_all_along, name="test-puncher")
    puncher.start()
    try:
        # Slowloris: heads trickled a byte at a time are cut at the request deadline.
        slow = [_connect(port) for _ in range(10)]
        results: list[bool] = []
        workers = [threading.Thread(target=lambda s=s: results.append(
            _closed_by_server(s, b"GET /iclock/cdata?SN=SN0201&options=all HTTP/1.1\r\n")),
            name="test-slowloris") for s in slow]
        for w in workers:
            w.start()

        # A 100 MB body is refused from its Content-Length, never read.
        big = _connect(port)
        big.sendall(b"POST /iclock/cdata?SN=SN0201&table=ATTLOG&Stamp=1 HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Length: 104857600\r\n\r\n" + b"1\t2026-01-01 00:00:00\t0\t1\n" * 2000)
        assert _answer(big).startswith(b"HTTP/1.1 413")
        big.close()

        # Binary garbage, an endless request line, too many headers: 4xx or closed.
        for junk in (os.urandom(20000), b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
                     b"GET /iclock/ping?SN=SN0201 HTTP/1.1\r\n" + b"X-A: b\r\n" * 3000 + b"\r\n"):
            g = _connect(port)
            try:
                g.sendall(junk)
            except OSError:
                pass
            head = _answer(g)
            assert head == b"" or head[9:10] == b"4", head[:80]
            g.close()

        # A flood: far more connections than the caps; the excess is closed at once.
        flood = []
        for _ in range(600):
            try:
                flood.append(_connect(port))
            except OSError:
                break
        assert len(flood) >= 300
        for w in workers:
            w.join(90)
        assert results == [True] * 10, "every slowloris connection was cut"
        for s in flood + slow:
            s.close()
    finally:
        stop_punching.set()
        puncher.join()

    # The listener still answers, and the terminal's punches all got in.
    wait_until(lambda: t.pending() == 0, 120, "the terminal's backlog acknowledged")
    expected = {(rec.pin, rec.local) for rec in t.log}
    assert len(r.stored("door")) == len(expected) >= 250
    probe = _connect(port)
    probe.sendall(b"GET /iclock/ping?SN=SN0201 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _answer(probe).startswith(b"HTTP/1.1 200")
    probe.close()
    wait_until(lambda: r.listener.status()["connections"] == 0, 30, "connections drained")
    assert r.listener.status()["refused_connections"] > 0


def test_bodies_held_at_once_are_bounded(rig):
    """Many half-sent large bodies cannot make the listener hold more than 4 of them."""
    r = rig(max_body_bytes=64 * 1024, request_timeout_s=20.0)
    d = r.terminal("door", "SN0202")
    t = r.sim("SN0202")
    wait_until(lambda: r.runners["door"].state.state == "online", 30, "online")
    head = (b"POST /iclock/cdata?SN=SN0202&table=ATTLOG&Stamp=1 HTTP/1.1\r\n"
            b"Content-Length: 65536\r\n\r\n1\t2026-01-01 00:00:00\t0\t1\n")
    holders = [_connect(r.listener.port) for _ in range(4)]
    for h in holders:
        h.sendall(head)  # the rest of each body never comes (until the deadline)
    wait_until(lambda: r.listener._server.body_budget == 0, 30, "four bodies reserved")
    fifth = _connect(r.listener.port)
    fifth.sendall(head)
    assert _answer(fifth).startswith(b"HTTP/1.1 503")
    assert d.status()["refused_busy"] >= 1
    for h in holders:
        h.close()
    wait_until(lambda: r.listener.status()["connections"] == 0, 30, "holders gone")
    t.fill(20, datetime(2026, 11, 20, 8, 0))  # the budget came back: uploads go through
    wait_until(lambda: t.pending() == 0, 60, "acknowledged")
    assert len(r.stored("door")) == 20
