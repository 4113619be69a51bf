"""The private Mosquitto rig: listeners, TLS, passwords, ACL, size limits, restarts."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import gateway.devkit.broker as broker_mod
from gateway.devkit.broker import DEFAULT_USERS, BrokerError, MosquittoBroker
from gateway.devkit.certs import make_server_cert

BROKER_USER, BROKER_PASSWORD = next(iter(DEFAULT_USERS.items()))


def test_plain_publish_subscribe(mosquitto, subscriber, mqtt_client):
    sub = subscriber(mosquitto.port, "attendance/#")
    pub = mqtt_client(mosquitto.port)
    assert pub.next("conn")[1] == 0
    info = pub.client.publish("attendance/gw1/punches", b'{"v":1,"punches":[{"seq":1}]}', qos=1)
    _, mid, rc = pub.next("pub")
    assert mid == info.mid and not rc.is_failure
    sub.wait_for_count(1)
    assert sub.punches() == [{"seq": 1}]
    assert sub.messages[0].retain is False


def test_tls_with_right_ca_connects(mosquitto, subscriber, mqtt_client):
    sub = subscriber(mosquitto.tls_port, "t/#", host="localhost", ca_file=mosquitto.ca_file)
    pub = mqtt_client(mosquitto.tls_port, ca_file=mosquitto.ca_file)
    assert pub.next("conn")[1] == 0
    pub.client.publish("t/x", b"over tls", qos=1)
    sub.wait_for(lambda ms: any(m.payload == b"over tls" for m in ms))


def test_tls_with_wrong_ca_is_refused(mosquitto, certs, mqtt_client):
    pub = mqtt_client(mosquitto.tls_port, ca_file=certs.wrong_ca_cert, connect=False)
    with pytest.raises(ssl.SSLCertVerificationError):
        pub.client.connect("localhost", mosquitto.tls_port)


def test_tls_with_expired_server_cert_is_refused(mosquitto_factory, certs, mqtt_client):
    expired = make_server_cert(certs, "expired-server", days=-2)
    broker = mosquitto_factory(plain=False, tls=True, server_cert=expired)
    pub = mqtt_client(broker.tls_port, ca_file=certs.ca_cert, connect=False)
    with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
        pub.client.connect("localhost", broker.tls_port)


def test_mutual_tls_requires_a_client_cert(mosquitto_factory, certs):
    broker = mosquitto_factory(plain=False, tls=True, tls_require_client_cert=True)
    good = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    good.tls_set(ca_certs=str(broker.ca_file), certfile=str(broker.client_cert),
                 keyfile=str(broker.client_key))  # fmt: skip
    assert good.connect("localhost", broker.tls_port) == 0
    good.disconnect()
    bare = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    bare.tls_set(ca_certs=str(broker.ca_file))
    with pytest.raises((ssl.SSLError, OSError)):
        bare.connect("localhost", broker.tls_port)
        # TLS 1.3 reports a missing client cert only after the handshake: make it read.
        for _ in range(50):
            if bare.loop(0.1) != 0:
                raise OSError("connection closed by the broker")


@pytest.mark.parametrize(("password", "ok"), [(BROKER_PASSWORD, True), ("wrong-password", False)])
def test_password_listener(mosquitto, mqtt_client, password, ok):
    pub = mqtt_client(mosquitto.auth_port, username=BROKER_USER, password=password)
    rc = pub.next("conn")[1]
    assert rc.is_failure is (not ok), str(rc)


def test_anonymous_refused_on_password_listener(mosquitto, mqtt_client):
    pub = mqtt_client(mosquitto.auth_port)
    assert pub.next("conn")[1].is_failure


def test_acl_denial_gives_puback_not_authorized(mosquitto_factory, mqtt_client, subscriber):
    acl = f"user {BROKER_USER}\ntopic readwrite attendance/#\n"
    broker = mosquitto_factory(auth=True, acl=acl)
    sub = subscriber(broker.port, "#")
    pub = mqtt_client(broker.auth_port, username=BROKER_USER, password=BROKER_PASSWORD)
    assert not pub.next("conn")[1].is_failure
    pub.client.publish("forbidden/x", b"denied", qos=1)
    _, _, rc = pub.next("pub")
    assert rc.is_failure and rc.value == 0x87, str(rc)  # MQTT 5 "Not authorized"
    pub.client.publish("attendance/x", b"allowed", qos=1)
    assert not pub.next("pub")[2].is_failure
    sub.wait_for(lambda ms: any(m.payload == b"allowed" for m in ms))
    assert all(m.payload != b"denied" for m in sub.messages)


def test_max_packet_size_refuses_an_oversized_publish(mosquitto_factory, mqtt_client, subscriber):
    broker = mosquitto_factory(max_packet_size=2000)
    sub = subscriber(broker.port, "big/#")
    pub = mqtt_client(broker.port)
    _, _, props = pub.next("conn")
    assert props.MaximumPacketSize == 2000
    pub.client.publish("big/x", b"x" * 5000, qos=1)
    reason = pub.next("disc")[1]  # Mosquitto drops the connection: "Packet too large"
    assert reason.is_failure
    pub.client.loop_stop()
    pub.client.disconnect()
    small = mqtt_client(broker.port)
    small.next("conn")
    small.client.publish("big/ok", b"small", qos=1)
    sub.wait_for(lambda ms: any(m.topic == "big/ok" for m in ms))
    assert [m.topic for m in sub.messages] == ["big/ok"]


def test_message_size_limit_refuses_an_oversized_publish(
    mosquitto_factory, mqtt_client, subscriber
):
    # Mosquitto 2.0.11 answers with PUBACK 0x95, a code MQTT 5 does not allow in a PUBACK, so
    # paho 2.2 drops the connection ("Protocol error") instead of reporting a failed publish.
    broker = mosquitto_factory(message_size_limit=1000)
    sub = subscriber(broker.port, "big/#")
    pub = mqtt_client(broker.port)
    pub.next("conn")
    pub.client.publish("big/x", b"x" * 5000, qos=1)
    assert pub.next("disc")[1].is_failure
    pub.client.loop_stop()
    pub.client.disconnect()
    small = mqtt_client(broker.port)
    small.next("conn")
    small.client.publish("big/ok", b"small", qos=1)
    sub.wait_for(lambda ms: any(m.topic == "big/ok" for m in ms))
    assert [m.topic for m in sub.messages] == ["big/ok"]


def test_kill_and_restart_on_the_same_port(mosquitto, subscriber, mqtt_client):
    port, tls_port = mosquitto.port, mosquitto.tls_port
    sub = subscriber(port, "r/#")
    mosquitto.kill()
    assert not mosquitto.is_running
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    mosquitto.start()
    assert (mosquitto.port, mosquitto.tls_port) == (port, tls_port)
    sub.wait_for(lambda _: sub.connected and sub.connects >= 2)
    pub = mqtt_client(port)
    pub.next("conn")
    pub.client.publish("r/after", b"back", qos=1)
    sub.wait_for(lambda ms: any(m.topic == "r/after" for m in ms))
    mosquitto.restart()  # graceful this time
    assert mosquitto.port == port


def test_paused_broker_holds_traffic_until_resumed(mosquitto, subscriber, mqtt_client):
    sub = subscriber(mosquitto.port, "p/#")
    pub = mqtt_client(mosquitto.port)
    pub.next("conn")
    mosquitto.pause()
    assert mosquitto.is_running
    pub.client.publish("p/x", b"held", qos=1)
    with pytest.raises(TimeoutError):
        sub.wait_for(lambda ms: len(ms) > 0, timeout=1.0)
    mosquitto.resume()
    sub.wait_for(lambda ms: any(m.payload == b"held" for m in ms))


def test_persistence_keeps_retained_messages(mosquitto_factory, mqtt_client, subscriber):
    broker = mosquitto_factory(persistence=True)
    pub = mqtt_client(broker.port)
    pub.next("conn")
    pub.client.publish("s/status", b"online", qos=1, retain=True)
    pub.next("pub")
    broker.restart()  # SIGTERM saves mosquitto.db
    sub = subscriber(broker.port, "s/#")
    sub.wait_for(lambda ms: len(ms) > 0)
    got = sub.retained("s/status")
    assert got is not None and got.payload == b"online"


def test_first_start_retries_when_a_port_is_taken(tmp_path, certs, monkeypatch):
    squatter = socket.create_server(("127.0.0.1", 0))
    taken = squatter.getsockname()[1]
    real = broker_mod.free_ports
    calls = []

    def rigged(n: int, host: str = "127.0.0.1") -> list[int]:
        calls.append(n)
        return [taken] if len(calls) == 1 else real(n, host)

    monkeypatch.setattr(broker_mod, "free_ports", rigged)
    try:
        with MosquittoBroker(tmp_path / "b", certs=certs) as broker:
            assert broker.port != taken and len(calls) == 2
    finally:
        squatter.close()


def test_a_broken_config_raises_with_the_broker_log(tmp_path):
    broker = MosquittoBroker(tmp_path / "b", extra_config="no_such_option 1")
    with pytest.raises(BrokerError, match="no_such_option"):
        broker.start()


def test_ports_need_a_start(tmp_path: Path):
    broker = MosquittoBroker(tmp_path / "b")
    with pytest.raises(BrokerError):
        _ = broker.port
    with pytest.raises(BrokerError):
        _ = MosquittoBroker(tmp_path / "c", tls=False).tls_port
