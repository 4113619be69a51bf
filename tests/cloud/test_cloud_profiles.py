"""Each profile against a Mosquitto configured like its platform (issue 19):
``retain_available false`` where the platform keeps no retained messages, ``max_qos 1``,
its message size limit, an ACL allowing only the profile's topics, and the login the
platform would accept, computed by the documented algorithm (vectors: test_cloud_signing).

Per profile: every punch delivered on the profile's topic, nothing retained where refused,
one connection (no disconnect loop), and a broker kill -9 in the middle loses nothing.
"""

from __future__ import annotations

import time

import pytest

from gateway.config import MqttSection
from gateway.uplink import profiles
from tests.cloud.cloudlib import (
    GW,
    acl_for,
    add_punches,
    connects,
    db,
    make_profile,
    platform_broker,
    publisher,
    punch_ids,
    watch,
)
from tests.pipeline.harness import wait_until

SIZE = {"aws-iot": 128 * 1024, "azure-iot-hub": 256 * 1024, "aliyun-iot": 256 * 1024,
        "huawei-iotda": 1024 * 1024, "tencent-iot": 16 * 1024, "generic": 16 * 1024}  # fmt: skip


def _aws_broker(factory, now):
    """AWS IoT: mutual TLS, the certificate is the identity (mosquitto: use_identity_as_username);
    retained messages allowed, QoS ≤ 1."""
    base = MqttSection(host="localhost", port=1, protocol="5", client_id=GW, profile="aws-iot")
    prof = make_profile("aws-iot", base, now=now)
    broker = factory(plain=False, auth=True, tls=True, tls_auth=True, tls_require_client_cert=True,
                     users={"watcher": "watcher-pass"}, acl=acl_for(prof, "test-client"),
                     listener_config="max_qos 1\nuse_identity_as_username true",
                     message_size_limit=SIZE["aws-iot"])  # fmt: skip
    mqtt = MqttSection(host="localhost", port=broker.tls_port, tls=True, ca_file=broker.ca_file,
                       cert_file=broker.client_cert, key_file=broker.client_key, protocol="5",
                       client_id=GW, profile="aws-iot", max_inflight=10,
                       profile_options=prof.options)  # fmt: skip
    prof.mqtt = mqtt
    return broker, prof, mqtt


@pytest.mark.parametrize("name", profiles.NAMES)
def test_profile_delivers_through_platform_like_broker_and_outage(
    tmp_path, mosquitto_factory, subscriber, name
):
    now = time.time()
    if name == "aws-iot":
        broker, prof, mqtt = _aws_broker(mosquitto_factory, now)
        watcher_port = broker.auth_port
    else:
        proto = prof_protocol = profiles.PROFILES[name].default_protocol
        pb = platform_broker(mosquitto_factory, name, protocol=proto, now=now,
                             size_limit=SIZE[name])  # fmt: skip
        broker, prof, mqtt, watcher_port = pb.broker, pb.profile, pb.mqtt, pb.port
        assert prof_protocol == mqtt.protocol
    sub = watch(subscriber, watcher_port)
    store = db(tmp_path)
    add_punches(store, 120)
    pub = publisher(mqtt, store, prof)
    t = prof.topics
    try:
        sub.wait_for(lambda ms: len(set(punch_ids(ms, t.punches))) >= 120, timeout=60)
        wait_until(lambda: store.figures()["pending"] == 0, 30, "120 delivered")
        sub.wait_for_count(1, t.status, timeout=30)
        assert connects(broker, prof.credentials().client_id) == 1, broker.log_text()[-2000:]
        retains = name == "aws-iot"  # the only platform-like broker here that keeps them
        assert pub.caps.current.retain is retains
        assert all(m.retain is False for m in sub.messages) or retains
        # outage: the broker is killed, punches keep coming, the broker returns
        broker.restart(hard=True)
        add_punches(store, 80, start=120)
        sub.wait_for(lambda ms: len(set(punch_ids(ms, t.punches))) >= 200, timeout=90)
        wait_until(lambda: store.figures()["pending"] == 0, 30, "200 delivered")
        assert store.figures()["dead_lettered"] == 0
        late = watch(subscriber, watcher_port)
        time.sleep(0.5)
        kept = [m.topic for m in late.messages if m.retain]
        assert kept == [] if not retains else set(kept) <= {t.status}
    finally:
        pub.stop()
        store.close()


def test_refused_publish_is_dead_lettered_not_looped(tmp_path, mosquitto_factory, subscriber):
    """MQTT 5: the ACL refuses the punches topic (PUBACK 0x87): dead letters, link stays up."""
    now = time.time()
    pb = platform_broker(mosquitto_factory, "generic", protocol="5", now=now)
    creds = pb.profile.credentials()
    t = pb.profile.topics
    pb.broker.acl = f"user {creds.username}\ntopic write {t.status}\ntopic write {t.health}\n"
    pb.broker.restart()
    store = db(tmp_path)
    add_punches(store, 30)
    pub = publisher(pb.mqtt, store, pb.profile)
    try:
        wait_until(lambda: store.figures()["dead_lettered"] == 30, 60, "30 dead letters")
        assert store.figures()["pending"] == 0 and pub.state.connected
        assert connects(pb.broker, GW) == 1
    finally:
        pub.stop()
        store.close()


def test_too_large_for_profile_is_dead_lettered(tmp_path, mosquitto_factory, subscriber):
    """Tencent (MQTT 3.1.1, 16 KB): Mosquitto would PUBACK an oversize 3.1.1 message and drop
    it silently, so the profile's limit keeps it from ever being sent: dead-lettered."""
    pb = platform_broker(mosquitto_factory, "tencent-iot", protocol="3.1.1", now=time.time())
    sub = watch(subscriber, pb.port)
    store = db(tmp_path)
    add_punches(store, 5)
    add_punches(store, 1, start=5, user="x" * 20000)
    add_punches(store, 5, start=6)
    pub = publisher(pb.mqtt, store, pb.profile)
    try:
        sub.wait_for(lambda ms: len(set(punch_ids(ms, pb.profile.topics.punches))) >= 10, 60)
        wait_until(lambda: store.figures()["pending"] == 0, 30, "nothing pending")
        assert store.figures()["dead_lettered"] == 1
    finally:
        pub.stop()
        store.close()


def test_expiring_login_is_renewed_before_expiry(tmp_path, mosquitto_factory, subscriber):
    """Azure SAS tokens expire and IoT Hub then drops the device: the publisher reconnects
    with a fresh token at 80 % of its life, and punches keep flowing across the renewal."""
    broker = mosquitto_factory()
    sub = subscriber(broker.port, "#")
    base = MqttSection(host="127.0.0.1", port=broker.port, tls=False, protocol="3.1.1",
                       client_id=GW, profile="azure-iot-hub")  # fmt: skip
    prof = make_profile("azure-iot-hub", base, now=0)
    start = time.time()
    prof.clock = lambda: time.time() - 3590  # a one-hour token with 10 s left
    issued: list[float] = []
    make = prof.credentials
    prof.credentials = lambda now=None: (issued.append(time.time()), make(now))[1]  # type: ignore[method-assign]
    store = db(tmp_path)
    add_punches(store, 20)
    pub = publisher(base, store, prof)
    try:
        wait_until(lambda: store.figures()["pending"] == 0, 30, "first punches")
        wait_until(lambda: connects(broker, GW) >= 2, 60, "a renewal reconnect")
        add_punches(store, 20, start=20)
        wait_until(lambda: store.figures()["pending"] == 0, 30, "punches after renewal")
        assert len(set(punch_ids(sub.messages, prof.topics.punches))) == 40
        assert any(t > start + 4 for t in issued)  # a new token was computed for the renewal
    finally:
        pub.stop()
        store.close()
