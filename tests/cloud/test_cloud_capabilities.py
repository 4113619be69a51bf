"""Capability detection (issue 19) against a Mosquitto set up like a managed IoT platform:
``retain_available false``, ``max_qos 1``, ``message_size_limit 16384``.

Before issue 19 the broker refused the gateway's CONNECT (its will was retained) on every
attempt and not one punch was delivered. Here: punches delivered, nothing retained, status
still published (unretained, with every health beat), and no reconnect loop.
"""

from __future__ import annotations

import time

import pytest

from gateway.config import MqttSection
from gateway.uplink import payloads
from tests.cloud.cloudlib import GW, RESTRICTED, add_punches, connects, db, publisher, punch_ids
from tests.pipeline.harness import wait_until


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_restricted_broker_gets_every_punch_and_nothing_retained(
    tmp_path, mosquitto_factory, subscriber, protocol
):
    broker = mosquitto_factory(message_size_limit=16384, **RESTRICTED)
    sub = subscriber(broker.port, "#")
    store = db(tmp_path)
    add_punches(store, 300)
    cfg = MqttSection(host="127.0.0.1", port=broker.port, tls=False, protocol=protocol,
                      client_id=GW, keepalive_s=30)  # fmt: skip
    pub = publisher(cfg, store)
    topics = payloads.Topics("attendance", GW)
    try:
        sub.wait_for(lambda ms: len(set(punch_ids(ms, topics.punches))) >= 300, timeout=60)
        wait_until(lambda: store.figures()["pending"] == 0, 30, "all 300 marked delivered")
        assert pub.state.connected and not pub.caps.current.retain
        # liveness without retain: status, health and terminal states ride every health beat
        pub.set_retained(topics.terminal_status("lobby"), b'{"state":"online"}')
        for _ in range(2):
            pub.set_retained(topics.health, b'{"v":1}')
            time.sleep(0.3)
        sub.wait_for(lambda ms: sum(m.topic == topics.status for m in ms) >= 2, timeout=30)
        sub.wait_for_count(1, topics.terminal_status("lobby"), timeout=30)
        assert all(not m.retain for m in sub.messages)
        # a new subscriber finds nothing retained on the broker
        late = subscriber(broker.port, "#")
        time.sleep(0.5)
        assert late.messages == []
        # no disconnect loop: one refused attempt at most (MQTT 5: CONNACK 0x9A; 3.1.1: a
        # close before CONNACK, twice), then one connection that stays up
        assert connects(broker, GW) == 1
        assert pub.state.capabilities["why"]["retain"]
    finally:
        pub.stop()
        store.close()


def test_oversize_punch_is_dead_lettered_not_looped(tmp_path, mosquitto_factory, subscriber):
    """A punch that cannot fit the broker's limit is dead-lettered; the rest flow."""
    broker = mosquitto_factory(max_packet_size=4096, **RESTRICTED)
    sub = subscriber(broker.port, "#")
    store = db(tmp_path)
    add_punches(store, 5)
    add_punches(store, 1, start=5, user="x" * 6000)  # one huge punch in the middle
    add_punches(store, 5, start=6)
    cfg = MqttSection(host="127.0.0.1", port=broker.port, tls=False, client_id=GW)
    pub = publisher(cfg, store)
    topics = payloads.Topics("attendance", GW)
    try:
        sub.wait_for(lambda ms: len(set(punch_ids(ms, topics.punches))) >= 10, timeout=60)
        wait_until(lambda: store.figures()["pending"] == 0, 30, "nothing left pending")
        assert store.figures()["dead_lettered"] == 1
        assert pub.state.connected
        assert connects(broker, GW) == 1
    finally:
        pub.stop()
        store.close()


def test_qos0_only_broker_gets_no_punch_and_raises_fault_6(tmp_path, mosquitto_factory):
    """``max_qos 0``: the will goes at QoS 0 (CONNACK 0x9B otherwise), then the CONNACK says
    Maximum QoS 0: a QoS 0 punch would have no PUBACK, so none is sent; they stay pending and
    the publisher reports the refusal (fault 6) instead of weakening delivery."""
    broker = mosquitto_factory(listener_config="max_qos 0")
    store = db(tmp_path)
    add_punches(store, 5)
    cfg = MqttSection(host="127.0.0.1", port=broker.port, tls=False, client_id=GW)
    pub = publisher(cfg, store)
    try:
        wait_until(lambda: pub.state.connected, 30, "connected")
        assert "Maximum QoS = 0" in (pub.state.refused or "")
        time.sleep(1.0)
        assert store.figures()["pending"] == 5 and pub.state.published == 0
        assert connects(broker, GW) == 1
    finally:
        pub.stop()
        store.close()
