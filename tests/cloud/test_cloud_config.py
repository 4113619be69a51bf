"""``[mqtt] profile`` and ``[mqtt.<profile>]``: every mistake reported with its TOML path;
secrets read from files, never printed; a signed login waits for NTP (fault 5)."""

from __future__ import annotations

import os
import time

import pytest

from gateway.config import MqttSection, parse
from gateway.errors import ConfigError
from gateway.store.db import Store
from gateway.uplink.publisher import Publisher
from tests.cloud.cloudlib import GW, add_punches, connects, make_profile
from tests.pipeline.harness import wait_until


def _doc(mqtt: dict, tmp_path) -> dict:
    return {"gateway": {"id": "gw-1", "timezone": "UTC", "data_dir": str(tmp_path)},
            "mqtt": {"host": "h", "tls": False, **mqtt}, "leds": {"backend": "null"}}  # fmt: skip


def _issues(mqtt: dict, tmp_path) -> dict[str, str]:
    with pytest.raises(ConfigError) as err:
        parse(_doc(mqtt, tmp_path))
    return {i.path: i.message for i in err.value.issues}


def _secret(tmp_path, text="c2VjcmV0", mode=0o600):
    p = tmp_path / "dev.secret"
    p.write_text(text + "\n")
    os.chmod(p, mode)
    return str(p)


def test_profile_tables_are_validated(tmp_path):
    got = _issues({"profile": "aliyun-iot", "protocol": "5", "keepalive_s": 20,
                   "aliyun-iot": {"device_name": "d", "color": "red"},
                   "tencent-iot": {}}, tmp_path)  # fmt: skip
    assert "mqtt.aliyun-iot.product_key" in got
    assert got["mqtt.aliyun-iot.color"] == "unknown key"
    assert "profile" in got["mqtt.tencent-iot"]
    assert "30…1200" in got["mqtt.keepalive_s"]
    assert "device_secret_file is required" in got["mqtt.aliyun-iot"]
    psk = _secret(tmp_path, mode=0o644)
    table = {"product_id": "P", "device_psk_file": psk}
    got = _issues({"profile": "tencent-iot", "protocol": "5", "username": "u",
                   "tencent-iot": table}, tmp_path)  # fmt: skip
    assert "3.1.1" in got["mqtt.protocol"] and "computes its own login" in got["mqtt.username"]
    assert "world-readable" in got["mqtt.tencent-iot.device_psk_file"]
    got = _issues({"profile": "aws-iot"}, tmp_path)
    assert "certificate" in got["mqtt.cert_file"]
    assert "no-such" in _issues({"profile": "no-such"}, tmp_path)["mqtt.profile"]


def test_profile_secret_is_read_and_never_printed(tmp_path):
    secret = _secret(tmp_path, "s3cr3t-value")
    cfg = parse(
        _doc({"profile": "huawei-iotda", "huawei-iotda": {"secret_file": secret}}, tmp_path)
    )
    assert cfg.mqtt.protocol == "3.1.1"  # the profile's default
    assert cfg.mqtt.profile_options.secret == "s3cr3t-value"
    assert "s3cr3t" not in repr(cfg) and "s3cr3t" not in str(cfg.mqtt)
    assert cfg.mqtt.profile_options.values["device_id"] == "gw-1"


class _Clock:
    ok = False

    def synced(self) -> bool:
        return self.ok


def test_signed_login_waits_for_ntp(tmp_path, mosquitto_factory):
    """Tencent signs an expiry: no connection attempt before the clock is synced."""
    broker = mosquitto_factory()
    mqtt = MqttSection(host="127.0.0.1", port=broker.port, tls=False, protocol="3.1.1",
                       client_id=GW, profile="tencent-iot")  # fmt: skip
    prof = make_profile("tencent-iot", mqtt, now=time.time())
    store = Store(tmp_path / "g.db")
    add_punches(store, 3)
    sync = _Clock()
    pub = Publisher(mqtt, GW, store, boot_id="b", profile=prof, time_sync=sync)  # type: ignore[arg-type]
    pub.start()
    try:
        wait_until(lambda: "NTP" in pub.state.detail, 10, "the NTP wait")
        assert "fault 5" in pub.state.detail
        time.sleep(1.0)
        assert connects(broker, prof.credentials().client_id) == 0
        sync.ok = True
        wait_until(lambda: store.figures()["pending"] == 0, 30, "delivered once synced")
    finally:
        pub.stop()
        store.close()
