"""The recording subscriber: punch batches, retained status, callbacks, reconnects."""

from __future__ import annotations

import json
import threading

import pytest


def _batch(gw: str, seqs: list[int]) -> bytes:
    punches = [{"event_id": f"e{s}", "seq": s} for s in seqs]
    batch = {"v": 1, "gateway": gw, "batch_id": f"b{seqs[0]}", "punches": punches}
    return json.dumps(batch).encode()


def test_punches_flattens_batches_in_arrival_order(mosquitto, subscriber, mqtt_client):
    sub = subscriber(mosquitto.port, "attendance/#")
    pub = mqtt_client(mosquitto.port)
    pub.next("conn")
    pub.client.publish("attendance/gw1/punches", _batch("gw1", [1, 2]), qos=1)
    pub.client.publish("attendance/gw1/terminals/lobby/status", b'{"state":"online"}', qos=1)
    pub.client.publish("attendance/gw2/punches", _batch("gw2", [7]), qos=1)
    pub.client.publish("attendance/gw1/punches", _batch("gw1", [3]), qos=1)
    punches = sub.wait_for_punches(4)
    assert [p["seq"] for p in punches] == [1, 2, 7, 3]
    assert [p["seq"] for p in sub.punches(gateway="gw1")] == [1, 2, 3]
    assert sub.punches(prefix="other") == []
    assert [b["batch_id"] for b in sub.batches(gateway="gw2")] == ["b7"]


def test_retained_reflects_the_publishers_flag(mosquitto, subscriber, mqtt_client):
    sub = subscriber(mosquitto.port, "attendance/#")
    pub = mqtt_client(mosquitto.port)
    pub.next("conn")
    topic = "attendance/gw1/status"
    pub.client.publish(topic, b'{"state":"online"}', qos=1, retain=True)
    pub.client.publish("attendance/gw1/punches", _batch("gw1", [1]), qos=1)
    sub.wait_for_punches(1)
    got = sub.retained(topic)
    assert got is not None and got.json() == {"state": "online"}
    assert sub.retained("attendance/gw1/punches") is None
    # A late subscriber gets the retained message from the broker.
    late = subscriber(mosquitto.port, topic)
    late.wait_for(lambda ms: len(ms) == 1)
    assert late.retained(topic).json() == {"state": "online"}
    # An empty retained payload clears it.
    pub.client.publish(topic, b"", qos=1, retain=True)
    sub.wait_for(lambda ms: any(m.topic == topic and not m.payload for m in ms))
    assert sub.retained(topic) is None


def test_callback_sees_each_message_and_errors_do_not_stop_it(mosquitto, subscriber, mqtt_client):
    seen: list[str] = []
    two = threading.Event()

    def on_message(m):
        seen.append(m.topic)
        if len(seen) == 2:
            two.set()
        raise RuntimeError("a broken callback must not kill the subscriber")

    subscriber(mosquitto.port, "cb/#", on_message=on_message)
    pub = mqtt_client(mosquitto.port)
    pub.next("conn")
    pub.client.publish("cb/1", b"1", qos=1)
    pub.client.publish("cb/2", b"2", qos=1)
    assert two.wait(15)
    assert seen == ["cb/1", "cb/2"]


def test_password_subscriber_and_wait_for_timeout(mosquitto, subscriber):
    from gateway.devkit.broker import DEFAULT_USERS

    user, password = next(iter(DEFAULT_USERS.items()))
    sub = subscriber(mosquitto.auth_port, "#", username=user, password=password)
    with pytest.raises(TimeoutError, match="0 messages"):
        sub.wait_for(lambda ms: len(ms) > 0, timeout=0.3)


def test_refused_login_raises_with_the_reason(mosquitto, subscriber):
    with pytest.raises(TimeoutError, match="CONNACK"):
        sub = subscriber(mosquitto.auth_port, "#", start=False, username="nobody", password="x")
        sub.start(timeout=2)
