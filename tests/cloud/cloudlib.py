"""Helpers for the cloud-profile tests: platform-like brokers, punches, an in-process gateway.

A "platform-like" Mosquitto refuses what the platform refuses (``retain_available false``,
``max_qos 1``, ``message_size_limit``), lets the device publish only its profile's topics
(ACL), and knows the device by the credential the platform would accept, computed by the
platform's documented algorithm (``gateway.uplink.profiles.signing``, pinned to the docs'
vectors in test_cloud_signing.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.config import MqttSection
from gateway.devkit.broker import MosquittoBroker
from gateway.devkit.subscriber import Received, Subscriber
from gateway.pipeline.punch import Punch
from gateway.store.db import Store
from gateway.uplink import profiles
from gateway.uplink.profiles import ProfileOptions
from gateway.uplink.publisher import Publisher

GW = "gw-cloud"
RESTRICTED = {"extra_config": "retain_available false", "listener_config": "max_qos 1"}
# Fixed secrets (test data, not secrets): base64 where the platform wants base64.
SECRETS = {
    "azure-iot-hub": "+XLy+MVZ+aTeOnVzN2kLeB16O+kSxmz6g3rS6fAf6rw=",
    "aliyun-iot": "ga7XA6KdlEeiPXQPpRbAjOZXwG8ydgSe",
    "huawei-iotda": "12345678",
    "tencent-iot": "xjOShbtCetQmvEaJ75RJ1g==",
}
VALUES: dict[str, dict[str, Any]] = {
    "generic": {},
    "aws-iot": {"thing_name": GW},
    "azure-iot-hub": {"device_id": GW, "hub_host": "hub-test.azure-devices.net",
                      "sas_ttl_s": 3600},
    "aliyun-iot": {"product_key": "a1X2bEnP82z", "device_name": GW, "sign_method": "hmacsha256"},
    "huawei-iotda": {"device_id": f"pid_{GW}", "check_timestamp": True},
    "tencent-iot": {"product_id": "IAYFFH3EO2", "device_name": GW, "sign_method": "hmacsha256",
                    "token_ttl_s": 86400},
}  # fmt: skip


def make_profile(name: str, mqtt: MqttSection, *, now: float) -> profiles.Profile:
    """The profile with a fixed clock and connection id, so that the broker's password file
    can hold the one credential it will compute."""
    key_file = "test" if name in SECRETS else None
    opts = ProfileOptions(dict(VALUES[name]), SECRETS.get(name), key_file)
    prof = profiles.PROFILES[name](mqtt, GW, opts)
    prof.clock = lambda: now
    prof.connid = "ABCDE"
    return prof


def acl_for(prof: profiles.Profile, username: str) -> str:
    """Mosquitto ACL: the device may write its own topics only (and read nothing)."""
    t = prof.topics
    levels = t.terminal_status("TERMINALNAME").split("/")
    terminal = "/".join("+" if lv == "TERMINALNAME" else lv for lv in levels)
    if "TERMINALNAME" in terminal:  # inside a level (Azure's property bag): the parent's #
        terminal = "/".join(levels[:-1]) + "/#"
    lines = [f"user {username}"] + [f"topic write {x}" for x in (t.punches, t.status, t.health)]
    lines.append(f"topic write {terminal}")
    return "\n".join(lines) + "\nuser watcher\ntopic read #\ntopic read $oc/#\n"


@dataclass
class PlatformBroker:
    broker: MosquittoBroker
    profile: profiles.Profile
    mqtt: MqttSection
    port: int


def platform_broker(
    factory: Callable[..., MosquittoBroker],
    name: str,
    *,
    protocol: str,
    now: float,
    size_limit: int = 16384,
    **extra: Any,
) -> PlatformBroker:
    """A Mosquitto that behaves like platform ``name`` for one device."""
    login = {"username": "gw-user", "password": "gw-pass"} if name == "generic" else {}
    base = MqttSection(host="127.0.0.1", port=1, tls=False, protocol=protocol, client_id=GW,
                       profile=name, max_inflight=10, **login)  # fmt: skip
    prof = make_profile(name, base, now=now)
    creds = prof.credentials()
    users = {"watcher": "watcher-pass"}
    if creds.username:
        users[creds.username] = creds.password or "x509"
    broker = factory(plain=False, auth=True, users=users, acl=acl_for(prof, creds.username or ""),
                     message_size_limit=size_limit, **RESTRICTED, **extra)  # fmt: skip
    mqtt = MqttSection(host="127.0.0.1", port=broker.auth_port, tls=False, protocol=protocol,
                       client_id=GW, profile=name, keepalive_s=30, max_inflight=10,
                       profile_options=prof.options, **login)  # fmt: skip
    prof.mqtt = mqtt
    return PlatformBroker(broker, prof, mqtt, broker.auth_port)


def watch(make_sub: Callable[..., Subscriber], port: int, protocol: str = "5") -> Subscriber:
    from paho.mqtt.enums import MQTTProtocolVersion

    proto = MQTTProtocolVersion.MQTTv5 if protocol == "5" else MQTTProtocolVersion.MQTTv311
    return make_sub(port, ["#", "$oc/#"], username="watcher", password="watcher-pass",
                    protocol=proto)  # fmt: skip


def add_punches(store: Store, n: int, start: int = 0, *, user: str = "7") -> None:
    at = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    store.add([Punch(event_id=f"e{i}", terminal="lobby", driver="virtual", user_id=user, time=at)
               for i in range(start, start + n)])  # fmt: skip


def punch_ids(messages: list[Received], topic: str) -> list[str]:
    out: list[str] = []
    for m in messages:
        if m.topic == topic:
            out += [p["event_id"] for p in m.json()["punches"]]
    return out


def connects(broker: MosquittoBroker, client_id: str) -> int:
    """How many times ``client_id`` completed a CONNECT (Mosquitto's log)."""
    return len(re.findall(rf"New client connected from \S+ as {re.escape(client_id)} ",
                          broker.log_text()))  # fmt: skip


def publisher(mqtt: MqttSection, store: Store, prof: profiles.Profile | None = None) -> Publisher:
    pub = Publisher(mqtt, GW, store, boot_id="boot-1", profile=prof)
    pub.start()
    return pub


def db(tmp: Path) -> Store:
    return Store(tmp / "gw.db")
