"""The capability model's merging rules (no broker needed: pure bookkeeping)."""

from __future__ import annotations

from gateway.config import MqttSection
from gateway.uplink.capabilities import RETAIN_NOT_SUPPORTED, CapabilityModel
from gateway.uplink.profiles import PROFILES


def _model(name: str = "generic", protocol: str = "3.1.1", **kw) -> CapabilityModel:
    cfg = MqttSection(host="h", port=1, protocol=protocol, **kw)
    return CapabilityModel(PROFILES[name].limits, cfg, name)


def test_connack_and_profile_merge_strictest_wins():
    m = _model("tencent-iot", max_inflight=50, max_message_bytes=64 * 1024)
    c = m.on_connack({"ReceiveMaximum": 10, "MaximumPacketSize": 100_000,
                      "TopicAliasMaximum": 8}, topic_len=20)  # fmt: skip
    assert (c.window, c.max_message_bytes, c.topic_alias_maximum) == (10, 16 * 1024, 8)
    assert not c.retain and not c.will and m.will == (False, False)
    c = _model("generic", "5").on_connack({"RetainAvailable": 0, "MaximumQoS": 0}, 10)
    assert not c.retain and not c.qos1 and "Retain Available" in c.why["retain"]
    c = _model("aws-iot", "5", max_publish_rate=500.0).on_connack({}, 10)
    assert c.retain and c.max_publish_rate == 100.0


def test_retain_learnt_from_refusals_is_kept_and_3_1_1_closes_need_three_in_a_row():
    m = _model()
    for _ in range(2):
        m.closed(retained_in_flight=True, protocol="3.1.1")
    m.retained_acked()  # a retained message got through: the closes were the link's
    m.closed(retained_in_flight=True, protocol="3.1.1")
    m.closed(retained_in_flight=False, protocol="3.1.1")
    assert m.current.retain
    for _ in range(3):
        m.on_connack({}, 10)  # each connection accepted, then closed on the retained status
        m.closed(retained_in_flight=True, protocol="3.1.1")
    assert not m.current.retain and m.will == (True, False)
    assert not m.on_connack({}, 10).retain  # sticky across reconnects
    m5 = _model(protocol="5")
    m5.on_disconnect(RETAIN_NOT_SUPPORTED, "Retain not supported", True)
    assert not m5.current.retain and not m5.on_connack({"RetainAvailable": 1}, 10).retain
