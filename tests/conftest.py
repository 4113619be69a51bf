"""Shared fixtures: a private Mosquitto broker, a test PKI, TCP proxies, MQTT subscribers.

Everything is safe under pytest-xdist: ports are chosen free at run time (never 1883, which
belongs to a system broker), and every directory comes from ``tmp_path`` /
``tmp_path_factory`` (per worker). Driver-specific fixtures live in the conftest of their own
test directory.

The autouse ``_leak_check`` reports threads and brokers a test left running, as a
``LeakWarning`` (set ``GATEWAY_STRICT_LEAKS=1`` to make it an error).
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.devkit.broker import DEFAULT_USERS, MosquittoBroker, free_ports, live_brokers
from gateway.devkit.certs import TestPki, make_pki
from gateway.devkit.proxy import TcpProxy
from gateway.devkit.subscriber import Subscriber

BROKER_USER, BROKER_PASSWORD = next(iter(DEFAULT_USERS.items()))


class LeakWarning(UserWarning):
    """A test left a thread or a broker running."""


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    """The test PKI (CA, server, client, wrong CA), made once per worker."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def free_port() -> int:
    """A 127.0.0.1 TCP port that was free a moment ago."""
    return free_ports(1)[0]


@pytest.fixture
def mosquitto_factory(tmp_path: Path, certs: TestPki) -> Iterator[Callable[..., MosquittoBroker]]:
    """Start extra brokers: ``mosquitto_factory(acl=..., max_packet_size=...)``; all stopped."""
    brokers: list[MosquittoBroker] = []

    def make(**kwargs: Any) -> MosquittoBroker:
        kwargs.setdefault("certs", certs)
        workdir = tmp_path / f"mosquitto-{len(brokers)}"
        broker = MosquittoBroker(workdir, **kwargs)
        brokers.append(broker)
        return broker.start()

    yield make
    for broker in brokers:
        broker.stop()


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., MosquittoBroker]) -> MosquittoBroker:
    """A running broker with plain (``.port``), password (``.auth_port``, user
    ``BROKER_USER``/``BROKER_PASSWORD``) and TLS (``.tls_port``, ``.ca_file``) listeners."""
    return mosquitto_factory(plain=True, auth=True, tls=True)


@pytest.fixture
def tcp_proxy() -> Iterator[Callable[..., TcpProxy]]:
    """``tcp_proxy(target_port, target_host="127.0.0.1")`` -> a running TcpProxy; stopped."""
    proxies: list[TcpProxy] = []

    def make(target_port: int, target_host: str = "127.0.0.1", **kwargs: Any) -> TcpProxy:
        proxy = TcpProxy(target_host, target_port, **kwargs)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.stop()


@pytest.fixture
def subscriber() -> Iterator[Callable[..., Subscriber]]:
    """``subscriber(port, topics="#", host="127.0.0.1", **kw)`` -> a connected, subscribed
    Subscriber (``start=False`` to get it unstarted); stopped at teardown."""
    subs: list[Subscriber] = []

    def make(
        port: int,
        topics: str | list[str] = "#",
        *,
        host: str = "127.0.0.1",
        start: bool = True,
        **kwargs: Any,
    ) -> Subscriber:
        sub = Subscriber(host, port, topics, **kwargs)
        subs.append(sub)
        return sub.start() if start else sub

    yield make
    for sub in subs:
        sub.stop()


@pytest.fixture(autouse=True)
def _leak_check(request: pytest.FixtureRequest) -> Iterator[None]:
    """Report threads and brokers that outlive the test (after every fixture's teardown)."""
    threads_before = set(threading.enumerate())
    brokers_before = set(map(id, live_brokers()))
    yield
    deadline = time.monotonic() + 5.0  # threads may take a moment to notice they should end
    while True:
        threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        brokers = [b for b in live_brokers() if id(b) not in brokers_before]
        if not (threads or brokers) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if threads or brokers:
        what = [f"thread {t.name!r}" for t in threads] + [repr(b) for b in brokers]
        message = f"{request.node.nodeid} left running: {', '.join(what)}"
        for broker in brokers:  # do not let it hold ports and CPU for the rest of the run
            broker.kill()
        if os.environ.get("GATEWAY_STRICT_LEAKS") == "1":
            pytest.fail(message)
        warnings.warn(message, LeakWarning, stacklevel=1)
