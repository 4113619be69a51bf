"""The platforms' credential algorithms, as pure functions (tests pin them to the vectors
published with each platform's documentation; docs/cloud.md lists the sources).

* Alibaba Cloud IoT Platform: password = hex(HMAC(deviceSecret, "clientId{c}deviceName{d}
  productKey{p}timestamp{t}")), the parameters sorted by name and concatenated (Alibaba
  Cloud "Establish MQTT connections over TCP"; its worked example: clientId 12345,
  deviceName device, productKey pk, timestamp 789, secret "secret", hmacsha1).
* Huawei Cloud IoTDA: password = hex(HMAC-SHA256(key=timestamp YYYYMMDDHH (UTC),
  msg=secret)); client id "{device_id}_0_{0|1}_{timestamp}" (1 = the platform checks the
  timestamp). Doc vector: secret 12345678, timestamp 2025041401 →
  c75150e6cb841417396819e4d2ee4358a416344a03a083e3a8567074ddec820a.
* Tencent IoT Hub / IoT Explorer: username "{product}{device};12010126;{connid};{expiry}",
  password hex(HMAC(base64decode(psk), username)) + ";hmacsha256" (or ";hmacsha1").
* Azure IoT Hub: "SharedAccessSignature sr={quote(uri)}&sig={quote(b64(HMAC-SHA256(
  b64decode(key), quote(uri) + "\\n" + expiry)))}&se={expiry}", uri = "{hub}/devices/{id}"
  (learn.microsoft.com "Control access to IoT Hub with SAS"; vector from
  Azure/azure-iot-cli-extension TestSasTokenAuth).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
from datetime import UTC, datetime
from urllib.parse import quote

_HASHES = {"hmacsha256": hashlib.sha256, "hmacsha1": hashlib.sha1, "hmacmd5": hashlib.md5}
TENCENT_SDKAPPID = "12010126"  # fixed by the platform's documentation


def aliyun_password(
    device_secret: str, params: dict[str, str], sign_method: str = "hmacsha256"
) -> str:
    """Alibaba: the parameters sorted by name, ``name + value`` concatenated, HMAC'd."""
    content = "".join(k + params[k] for k in sorted(params))
    mac = hmac.new(device_secret.encode(), content.encode(), _HASHES[sign_method])
    return mac.hexdigest()


def aliyun_login(
    product_key: str,
    device_name: str,
    device_secret: str,
    timestamp_ms: int,
    *,
    tls: bool,
    sign_method: str = "hmacsha256",
) -> tuple[str, str, str]:
    """``(mqtt client id, username, password)`` for a device of Alibaba IoT Platform."""
    client = f"{product_key}.{device_name}"
    ts = str(timestamp_ms)
    mode = 2 if tls else 3  # securemode 2 = TLS direct, 3 = TCP direct
    client_id = f"{client}|securemode={mode},signmethod={sign_method},timestamp={ts}|"
    params = {"clientId": client, "deviceName": device_name, "productKey": product_key,
              "timestamp": ts}  # fmt: skip
    return (
        client_id,
        f"{device_name}&{product_key}",
        aliyun_password(device_secret, params, sign_method),
    )


def huawei_timestamp(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y%m%d%H")


def huawei_password(secret: str, timestamp: str) -> str:
    """Huawei IoTDA: the timestamp is the HMAC key and the secret the message."""
    return hmac.new(timestamp.encode(), secret.encode(), hashlib.sha256).hexdigest()


def huawei_login(
    device_id: str, secret: str, epoch_s: float, *, check_timestamp: bool = True
) -> tuple[str, str, str]:
    ts = huawei_timestamp(epoch_s)
    client_id = f"{device_id}_0_{1 if check_timestamp else 0}_{ts}"
    return client_id, device_id, huawei_password(secret, ts)


def tencent_connid(n: int = 5) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(n))


def tencent_login(
    product_id: str,
    device_name: str,
    psk_b64: str,
    expiry: int,
    *,
    connid: str | None = None,
    sign_method: str = "hmacsha256",
) -> tuple[str, str, str]:
    client_id = f"{product_id}{device_name}"
    username = f"{client_id};{TENCENT_SDKAPPID};{connid or tencent_connid()};{expiry}"
    key = base64.b64decode(psk_b64)
    token = hmac.new(key, username.encode(), _HASHES[sign_method]).hexdigest()
    return client_id, username, f"{token};{sign_method}"


def azure_sas(resource_uri: str, key_b64: str, expiry: int, policy: str | None = None) -> str:
    """An IoT Hub shared access signature for ``resource_uri`` valid until ``expiry``."""
    uri = quote(resource_uri, safe="")
    to_sign = f"{uri}\n{expiry}".encode()
    sig = base64.b64encode(hmac.new(base64.b64decode(key_b64), to_sign, hashlib.sha256).digest())
    token = f"SharedAccessSignature sr={uri}&sig={quote(sig.decode(), safe='')}&se={expiry}"
    return token + (f"&skn={policy}" if policy else "")
