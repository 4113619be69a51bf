"""The platforms' credential algorithms against the vectors published with their docs.

Sources (also in docs/cloud.md):

* Huawei IoTDA "设备连接鉴权" (support.huaweicloud.com/devg-ocsmartcampus/ocsmartcampus_04_0030):
  secret 12345678, timestamp 2025041401 → c75150e6…820a; client id example
  "D39564861q3gDa_0_0_2018072417" for UTC 2018-07-24 17:56:20.
* Alibaba Cloud "Establish MQTT connections over TCP": clientId 12345, deviceName device,
  productKey pk, timestamp 789, signmethod hmacsha1, deviceSecret secret → sign content
  "clientId12345deviceNamedeviceproductKeypktimestamp789" (the doc gives no digest: the
  digest is checked against Python's hmac on that exact content).
* Azure IoT Hub SAS: Azure/azure-iot-cli-extension TestSasTokenAuth: uri
  iot-hub-for-test.azure-devices.net/devices/iot-device-for-test, key +XLy…6rw=, expiry
  1471940363 → sig=SIumZ1ACqqPJZ2okHDlW9MSYKykEpqsQY3z6FMOICd4%3D.
* Tencent IoT Hub "设备基于 TCP 的 MQTT 接入": username "{pid}{dn};12010126;{connid};{expiry}",
  token = HMAC(base64decode(psk), username); no digest published, checked the same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

from gateway.uplink.profiles import signing


def test_huawei_doc_vector():
    assert (
        signing.huawei_password("12345678", "2025041401")
        == "c75150e6cb841417396819e4d2ee4358a416344a03a083e3a8567074ddec820a"
    )
    t = datetime(2018, 7, 24, 17, 56, 20, tzinfo=UTC).timestamp()
    cid, user, _ = signing.huawei_login("D39564861q3gDa", "s", t, check_timestamp=False)
    assert cid == "D39564861q3gDa_0_0_2018072417" and user == "D39564861q3gDa"
    cid, _, _ = signing.huawei_login("D39564861q3gDa", "s", t, check_timestamp=True)
    assert cid == "D39564861q3gDa_0_1_2018072417"


def test_aliyun_doc_example_sign_content():
    params = {"productKey": "pk", "timestamp": "789", "clientId": "12345", "deviceName": "device"}
    want = hmac.new(
        b"secret", b"clientId12345deviceNamedeviceproductKeypktimestamp789", hashlib.sha1
    ).hexdigest()
    assert signing.aliyun_password("secret", params, "hmacsha1") == want


def test_aliyun_login_shape():
    cid, user, pw = signing.aliyun_login("pk", "dev", "secret", 789, tls=True)
    assert cid == "pk.dev|securemode=2,signmethod=hmacsha256,timestamp=789|"
    assert user == "dev&pk"
    content = b"clientIdpk.devdeviceNamedevproductKeypktimestamp789"
    assert pw == hmac.new(b"secret", content, hashlib.sha256).hexdigest()
    assert signing.aliyun_login("pk", "dev", "s", 1, tls=False)[0].startswith("pk.dev|securemode=3")


def test_azure_sas_vector():
    token = signing.azure_sas(
        "iot-hub-for-test.azure-devices.net/devices/iot-device-for-test",
        "+XLy+MVZ+aTeOnVzN2kLeB16O+kSxmz6g3rS6fAf6rw=",
        1471940363,
    )
    assert token.startswith("SharedAccessSignature ")
    assert "sig=SIumZ1ACqqPJZ2okHDlW9MSYKykEpqsQY3z6FMOICd4%3D" in token
    assert "se=1471940363" in token
    assert "sr=iot-hub-for-test.azure-devices.net%2Fdevices%2Fiot-device-for-test" in token
    assert "skn=" not in token


def test_tencent_username_and_token():
    psk = "xjOShbtCetQmvEaJ75RJ1g=="
    cid, user, pw = signing.tencent_login("IAYFFH3EO2", "dev3", psk, 1635759071, connid="HD3CI")
    assert cid == "IAYFFH3EO2dev3"
    assert user == "IAYFFH3EO2dev3;12010126;HD3CI;1635759071"
    token = hmac.new(base64.b64decode(psk), user.encode(), hashlib.sha256).hexdigest()
    assert pw == f"{token};hmacsha256"
    _, _, pw1 = signing.tencent_login("P", "d", psk, 1, connid="AAAAA", sign_method="hmacsha1")
    assert pw1.endswith(";hmacsha1") and len(pw1.split(";")[0]) == 40
