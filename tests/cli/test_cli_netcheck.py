"""doctor's broker TCP step tries every resolved address, as the MQTT client does."""

from __future__ import annotations

import socket

from gateway.config import MqttSection
from gateway.ops.checks import FAIL, PASS, Check
from gateway.ops.netcheck import _tcp


def test_tcp_step_falls_back_to_the_next_address():
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))  # IPv4 only: "::1" is refused (or unroutable)
        srv.listen()
        port = srv.getsockname()[1]
        cfg = MqttSection(host="localhost", port=port, tls=False)
        out: list[Check] = []
        assert _tcp(cfg, ["::1", "127.0.0.1"], 2.0, out) == "127.0.0.1"
        assert out[0].status == PASS and "::1" in out[0].detail
    out = []
    assert _tcp(cfg, ["127.0.0.1"], 2.0, out) is None  # closed now: a named failure
    assert out[0].status == FAIL and "127.0.0.1" in out[0].detail
