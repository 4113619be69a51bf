"""Issue 2: the broker link — TLS (private CA, mutual TLS), passwords, the broker's Receive
Maximum, and the publish-rate cap."""

from __future__ import annotations

import time

import pytest

from tests.pipeline.harness import wait_until, write_punch_file


def _terminal(path):
    return {"name": "t1", "driver": "virtual", "file": str(path), "serial": "SN1"}


@pytest.mark.parametrize("mutual", [False, True], ids=["tls-ca_file", "mtls"])
def test_tls_with_private_ca_and_password(tmp_path, mosquitto_factory, certs, subscriber,
                                          gateway_factory, mutual):
    broker = mosquitto_factory(tls=True, tls_auth=True, tls_require_client_cert=mutual)
    pw = tmp_path / "pw"
    pw.write_text("gateway-test-password\n")
    pw.chmod(0o640)
    sub = subscriber(broker.tls_port, "attendance/#", host="localhost", ca_file=certs.ca_cert,
                     username="gateway", password="gateway-test-password",
                     cert_file=certs.client_cert if mutual else None,
                     key_file=certs.client_key if mutual else None)
    log = tmp_path / "t1.jsonl"
    ids = write_punch_file(log, 50)
    mqtt = {"host": "localhost", "port": broker.tls_port, "tls": True,
            "ca_file": str(certs.ca_cert), "username": "gateway", "password_file": str(pw)}
    if mutual:
        mqtt |= {"cert_file": str(certs.client_cert), "key_file": str(certs.client_key)}
    with gateway_factory(mqtt=mqtt, terminals=[_terminal(log)]) as gw:
        punches = sub.wait_for_punches(50, timeout=60)
        assert gw.terminate() == 0
    assert {p["event_id"] for p in punches} == set(ids)
    assert "gateway-test-password" not in gw.log()


def test_window_capped_by_broker_receive_maximum(tmp_path, mosquitto_factory, subscriber,
                                                 gateway_factory):
    broker = mosquitto_factory(max_inflight=3)  # advertised as MQTT 5 Receive Maximum 3
    sub = subscriber(broker.port, "attendance/#")
    log = tmp_path / "t1.jsonl"
    write_punch_file(log, 200)
    gw = gateway_factory(mqtt={"host": "127.0.0.1", "port": broker.port, "max_inflight": 20,
                               "batch_max_punches": 5}, terminals=[_terminal(log)])
    with gw:
        sub.wait_for_punches(200, timeout=60)
        assert gw.terminate() == 0
    assert '"window": 3' in gw.log()


def test_publish_rate_cap(tmp_path, mosquitto, subscriber, gateway_factory):
    """100 single-punch messages at max_publish_rate = 20/s cannot take less than ~4 s.

    A lower bound on elapsed time only: a slow machine makes it longer, never shorter.
    """
    sub = subscriber(mosquitto.port, "attendance/+/punches")
    log = tmp_path / "t1.jsonl"
    write_punch_file(log, 100)
    gw = gateway_factory(mqtt={"host": "127.0.0.1", "port": mosquitto.port,
                               "batch_max_punches": 1, "max_publish_rate": 20},
                         terminals=[_terminal(log)])
    with gw:
        wait_until(lambda: len(sub.punches()) >= 1, 60, "first punch")
        t0 = time.monotonic()
        sub.wait_for_punches(100, timeout=60)
        elapsed = time.monotonic() - t0
        assert gw.terminate() == 0
    assert elapsed >= (100 - 1 - 20) / 20, f"rate cap not honoured: {elapsed:.2f}s"
