"""One class per ``[mqtt] profile``: its ``[mqtt.<profile>]`` keys, topics, limits, login.

Limits are the platforms' documented ones (docs/cloud.md cites each); where the broker
announces its own in CONNACK (MQTT 5) the stricter of the two wins at every connect.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from gateway.config.validate import Fields
from gateway.uplink.profiles import signing
from gateway.uplink.profiles.base import (
    Credentials,
    Limits,
    ProfileOptions,
    TemplateTopics,
    TopicMap,
    read_secret,
)

KB = 1024


class Profile:
    """``generic``: a broker that is ours to configure (mosquitto, EMQX, HiveMQ...)."""

    name: ClassVar[str] = "generic"
    limits: ClassVar[Limits] = Limits()
    default_protocol: ClassVar[str] = "5"
    keyfile_option: ClassVar[str | None] = None  # the table key naming the secret's file
    connid: str | None = None  # Tencent's connection id: None = random per login (tests fix it)

    def __init__(self, mqtt: Any, gateway_id: str, options: ProfileOptions) -> None:
        self.mqtt = mqtt  # the MqttSection (host, tls, username, password, client_id...)
        self.gateway_id = gateway_id
        self.options = options
        self.v = options.values
        self.clock: Callable[[], float] = time.time  # tests fix it to compute one credential

    @classmethod
    def parse(cls, f: Fields, gateway_id: str | None, check_files: bool) -> ProfileOptions:
        """Validate ``[mqtt.<name>]`` (generic has none)."""
        values = cls.read(f, gateway_id)
        secret, source = (None, None)
        if cls.keyfile_option is not None:
            secret, source = read_secret(f, cls.keyfile_option, check_files)
        return ProfileOptions(values, secret, source)

    @classmethod
    def read(cls, f: Fields, gateway_id: str | None) -> dict[str, Any]:
        return {}

    @property
    def topics(self) -> TopicMap:
        prefix = self.mqtt.topic_prefix
        base = f"{prefix}/{self.gateway_id}" if prefix else self.gateway_id
        return TemplateTopics(base + "/{kind}", base + "/terminals/{terminal}/status")

    def credentials(self, now: float | None = None) -> Credentials:
        return Credentials(
            self.mqtt.client_id or self.gateway_id, self.mqtt.username, self.mqtt.password
        )

    def needs_clock(self) -> bool:
        """True when the login signature depends on the Pi's time (wait for NTP first)."""
        return False

    @property
    def clock_detail(self) -> str:
        return f"the {self.name} login is signed with the time"


class AwsIot(Profile):
    """AWS IoT Core: mutual TLS, the thing name as client id, free topics (≤ 7 slashes)."""

    name = "aws-iot"
    # docs.aws.amazon.com/general/latest/gr/iot-core.html: 128 KB payload, 100 publishes/s
    # per connection; retained messages and wills supported at QoS 0/1 (no QoS 2).
    limits = Limits(max_message_bytes=128 * KB, max_publish_rate=100.0, one_connection=True)

    @classmethod
    def read(cls, f: Fields, gateway_id: str | None) -> dict[str, Any]:
        return {"thing_name": f.str("thing_name", gateway_id)}

    def credentials(self, now: float | None = None) -> Credentials:
        return Credentials(self.v["thing_name"], None, None)


class AzureIotHub(Profile):
    """Azure IoT Hub: fixed topic ``devices/{id}/messages/events/{property bag}``; the kind
    of message (and the terminal) travel in the property bag; SAS tokens that expire."""

    name = "azure-iot-hub"
    # learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub: MQTT 3.1.1 only, no QoS 2,
    # 256 KB messages; retained messages are not kept (the flag becomes a property); a will
    # is forwarded as telemetry (iothub-MessageType=Will), so it is used, unretained.
    limits = Limits(retain=False, protocols=("3.1.1",), max_message_bytes=256 * KB,
                    one_connection=True)  # fmt: skip
    default_protocol = "3.1.1"
    keyfile_option = "device_key_file"
    API_VERSION = "2021-04-12"

    @classmethod
    def read(cls, f: Fields, gateway_id: str | None) -> dict[str, Any]:
        return {
            "device_id": f.str("device_id", gateway_id),
            "hub_host": f.str("hub_host", None),
            "sas_ttl_s": f.int("sas_ttl_s", 3600, min=300, max=365 * 86400),
        }

    def needs_clock(self) -> bool:
        return self.options.secret is not None  # SAS expiry; x509 logins do not sign time

    @property
    def topics(self) -> TopicMap:
        base = f"devices/{self.v['device_id']}/messages/events/$.ct=application%2Fjson&$.ce=utf-8"
        return TemplateTopics(
            base + "&kind={kind}",
            base + "&kind=terminal_status&terminal={terminal}",
            quote_terminal=True,
            commands=False,  # cloud-to-device is devices/{id}/messages/devicebound/: not ours
        )

    def credentials(self, now: float | None = None) -> Credentials:
        hub = self.v["hub_host"] or self.mqtt.host
        dev = self.v["device_id"]
        user = f"{hub}/{dev}/?api-version={self.API_VERSION}"
        if self.options.secret is None:
            return Credentials(dev, user, None)  # x509 (cert_file/key_file)
        expiry = int((now or self.clock()) + self.v["sas_ttl_s"])
        token = signing.azure_sas(f"{hub}/devices/{dev}", self.options.secret, expiry)
        return Credentials(dev, user, token, float(expiry))


class AliyunIot(Profile):
    """Alibaba Cloud IoT Platform: signed client id/username/password; only the device's
    own ``/{productKey}/{deviceName}/user/...`` topics."""

    name = "aliyun-iot"
    # alibabacloud.com/help/en/iot: MQTT 3.1.1 (5.0 on Enterprise instances only); no will,
    # no retained messages; keepalive 30-1200 s; 256 KB per message.
    limits = Limits(retain=False, will=False, max_message_bytes=256 * KB, keepalive_s=(30, 1200),
                    one_connection=True)  # fmt: skip
    default_protocol = "3.1.1"
    keyfile_option = "device_secret_file"

    @classmethod
    def read(cls, f: Fields, gateway_id: str | None) -> dict[str, Any]:
        return {
            "product_key": f.str("product_key"),
            "device_name": f.str("device_name", gateway_id),
            "sign_method": f.choice("sign_method", ("hmacsha256", "hmacsha1"), "hmacsha256"),
        }

    @property
    def topics(self) -> TopicMap:
        base = f"/{self.v['product_key']}/{self.v['device_name']}/user"
        return TemplateTopics(base + "/{kind}", base + "/terminals/{terminal}/status")

    def credentials(self, now: float | None = None) -> Credentials:
        # The timestamp only has to match between client id and signature: the platform
        # does not compare it with its own clock, so an unsynced Pi still logs in.
        cid, user, pw = signing.aliyun_login(
            self.v["product_key"], self.v["device_name"], self.options.secret or "",
            int((now or self.clock()) * 1000), tls=self.mqtt.tls,
            sign_method=self.v["sign_method"],
        )  # fmt: skip
        return Credentials(cid, user, pw)


class HuaweiIotda(Profile):
    """Huawei Cloud IoTDA: password HMAC'd with the UTC hour; ``$oc/devices/{id}/user/...``."""

    name = "huawei-iotda"
    # support.huaweicloud.com (IoTDA "Constraints"): no will, no retained messages, QoS 0/1;
    # 1 MB per message; about 50 messages/s per device; one connection per device id.
    limits = Limits(retain=False, will=False, max_message_bytes=1024 * KB,
                    max_publish_rate=50.0, one_connection=True)  # fmt: skip
    default_protocol = "3.1.1"
    keyfile_option = "secret_file"

    @classmethod
    def read(cls, f: Fields, gateway_id: str | None) -> dict[str, Any]:
        return {
            "device_id": f.str("device_id", gateway_id),
            "check_timestamp": f.bool("check_timestamp", True),
        }

    def needs_clock(self) -> bool:
        return bool(self.v["check_timestamp"])

    @property
    def topics(self) -> TopicMap:
        base = f"$oc/devices/{self.v['device_id']}/user"
        return TemplateTopics(base + "/{kind}", base + "/terminals/{terminal}/status")

    def credentials(self, now: float | None = None) -> Credentials:
        cid, user, pw = signing.huawei_login(
            self.v["device_id"], self.options.secret or "", now or self.clock(),
            check_timestamp=self.v["check_timestamp"],
        )  # fmt: skip
        return Credentials(cid, user, pw)


class TencentIot(Profile):
    """Tencent IoT Explorer / IoT Hub: signed username with an expiry;
    ``{productId}/{deviceName}/...`` topics."""

    name = "tencent-iot"
    # cloud.tencent.com/document/product/1081/102803: MQTT 3.1.1, no will, no retained
    # messages, no QoS 2, keepalive 0-900 s; 16 KB per message (IoT Hub limits).
    limits = Limits(retain=False, will=False, protocols=("3.1.1",), max_message_bytes=16 * KB,
                    keepalive_s=(1, 900), one_connection=True)  # fmt: skip
    default_protocol = "3.1.1"
    keyfile_option = "device_psk_file"

    def needs_clock(self) -> bool:
        return True  # the username carries an expiry

    @classmethod
    def read(cls, f: Fields, gateway_id: str | None) -> dict[str, Any]:
        return {
            "product_id": f.str("product_id"),
            "device_name": f.str("device_name", gateway_id),
            "sign_method": f.choice("sign_method", ("hmacsha256", "hmacsha1"), "hmacsha256"),
            "token_ttl_s": f.int("token_ttl_s", 86400, min=300, max=365 * 86400),
        }

    @property
    def topics(self) -> TopicMap:
        base = f"{self.v['product_id']}/{self.v['device_name']}"
        return TemplateTopics(base + "/{kind}", base + "/terminals/{terminal}/status")

    def credentials(self, now: float | None = None) -> Credentials:
        expiry = int((now or self.clock()) + self.v["token_ttl_s"])
        cid, user, pw = signing.tencent_login(
            self.v["product_id"], self.v["device_name"], self.options.secret or "", expiry,
            sign_method=self.v["sign_method"], connid=self.connid,
        )  # fmt: skip
        return Credentials(cid, user, pw, float(expiry))


PROFILES: dict[str, type[Profile]] = {
    p.name: p for p in (Profile, AwsIot, AzureIotHub, AliyunIot, HuaweiIotda, TencentIot)
}
CredentialSource = Callable[[], Credentials]
