"""A managed IoT platform on one machine: an amqtt broker (a second broker implementation,
MQTT 3.1.1) that checks logins the way the platform does (issue 19).

Unlike a Mosquitto password file, which holds one credential, this broker verifies every
CONNECT with the platform's documented algorithm, re-implemented here from the docs (not
imported from ``gateway.uplink.profiles``: an independent check): Alibaba's signed client id,
Tencent's signed username with its expiry, Azure's SAS token with its expiry, a plain
username/password for ``generic``. So time-based logins can be tested across real time, gateway
restarts and broker restarts. It also refuses what the platform refuses: a CONNECT with a will
where there is none, a retained will or retained PUBLISH where nothing is retained (the
client is disconnected, as Mosquitto does with ``retain_available false``); and it lets the
device publish only under its own topic prefix. Everything refused is recorded in
``violations`` for the test to assert on.

amqtt itself refuses PUBLISH topics that begin with ``$`` (Huawei's ``$oc/...``): Huawei is
tested against Mosquitto only.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote

from amqtt.broker import Broker  # type: ignore[import-untyped]
from amqtt.contexts import Action  # type: ignore[import-untyped]
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin  # type: ignore[import-untyped]

from gateway.devkit.mosquitto import HOST, free_ports

WATCHER = ("watcher", "watcher-pass")  # the tests' own subscriber (test data, not a secret)
_REGISTRY: dict[str, CloudBroker] = {}  # plugin instance -> its broker, by name


def _hex(key: bytes, msg: str, method: str) -> str:
    algo = {"hmacsha256": hashlib.sha256, "hmacsha1": hashlib.sha1}[method]
    return hmac.new(key, msg.encode(), algo).hexdigest()


def verify_login(profile: str, ident: dict[str, str], secret: str, *, client_id: str,
                 username: str, password: str, now: float) -> str | None:  # fmt: skip
    """None when the platform would accept this login, else why not."""
    if profile == "generic":
        ok = username == ident["username"] and password == secret
        return None if ok else "bad username or password"
    if profile == "aliyun-iot":
        pk, dn = ident["product_key"], ident["device_name"]
        head, _, ext = client_id.partition("|")
        params = dict(kv.split("=", 1) for kv in ext.rstrip("|").split(",") if "=" in kv)
        content = {"clientId": head, "deviceName": dn, "productKey": pk}
        if "timestamp" in params:
            content["timestamp"] = params["timestamp"]
        msg = "".join(k + content[k] for k in sorted(content))
        want = _hex(secret.encode(), msg, params.get("signmethod", "hmacmd5"))
        if username != f"{dn}&{pk}" or password.lower() != want:
            return "signature mismatch"
        return None
    if profile == "tencent-iot":
        cid = ident["product_id"] + ident["device_name"]
        parts = username.split(";")
        if client_id != cid or len(parts) != 4 or parts[0] != cid or parts[1] != "12010126":
            return "bad client id or username"
        if int(parts[3]) < now:
            return "expired"
        token, _, method = password.partition(";")
        return None if token == _hex(base64.b64decode(secret), username, method) else "bad sign"
    if profile == "azure-iot-hub":
        dev, hub = ident["device_id"], ident["hub_host"]
        if client_id != dev or not username.startswith(f"{hub}/{dev}/?api-version="):
            return "bad client id or username"
        if not password.startswith("SharedAccessSignature "):
            return "not a SAS token"
        fields = {k: v[0] for k, v in parse_qs(password.split(" ", 1)[1]).items()}
        sr = quote(f"{hub}/devices/{dev}", safe="")
        if quote(fields.get("sr", ""), safe="") != sr or int(fields.get("se", "0")) < now:
            return "wrong resource or expired"
        mac = hmac.new(base64.b64decode(secret), f"{sr}\n{fields['se']}".encode(), hashlib.sha256)
        return None if base64.b64encode(mac.digest()).decode() == fields.get("sig") else "bad sig"
    return f"profile {profile} not emulated"


class PlatformAuth(BaseAuthPlugin):  # type: ignore[misc]
    """Checks every CONNECT like the platform (see ``verify_login``) and its will."""

    @dataclass
    class Config:
        """amqtt hands each plugin its table: here, which ``CloudBroker`` it serves."""

        name: str = ""

    async def authenticate(self, *, session: Any) -> bool | None:
        cb = _REGISTRY[self.config.name]
        if session.username == WATCHER[0]:
            return bool(session.password == WATCHER[1])
        why = verify_login(cb.profile, cb.identity, cb.secret, client_id=session.client_id or "",
                           username=session.username or "", password=session.password or "",
                           now=time.time())  # fmt: skip
        if why is None and session.will_flag and not cb.will:
            why = "a last will on a platform that has none"
        if why is None and session.will_flag and session.will_retain and not cb.retain:
            why = "a retained will on a platform that keeps nothing retained"
        cb.logins.append((session.client_id, why))
        if why is not None:
            cb.violations.append(f"CONNECT refused: {why}")
        return why is None


class PlatformTopics(BaseTopicPlugin):  # type: ignore[misc]
    """The device publishes under its prefix only; the watcher reads everything."""

    @dataclass
    class Config:
        """amqtt hands each plugin its table: here, which ``CloudBroker`` it serves."""

        name: str = ""

    async def topic_filtering(self, *, session: Any = None, topic: str | None = None,
                              action: Any = None) -> bool:  # fmt: skip
        cb = _REGISTRY[self.config.name]
        if session is not None and session.username == WATCHER[0]:
            return True
        ok = action == Action.PUBLISH and bool(topic) and topic.startswith(cb.prefix)  # type: ignore[union-attr]
        if not ok:
            cb.violations.append(f"{action} refused on {topic}")
        return ok


@dataclass
class CloudBroker:
    """``CloudBroker("tencent-iot", {...identity...}, secret, prefix).start()``; ``.port``."""

    profile: str
    identity: dict[str, str]
    secret: str
    prefix: str  # topics the device may publish to start with this
    retain: bool = False
    will: bool = False
    port: int = 0
    violations: list[str] = field(default_factory=list)
    logins: list[tuple[str | None, str | None]] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _broker: Any = None

    def __post_init__(self) -> None:
        self.name = f"cloud-{id(self)}"
        _REGISTRY[self.name] = self
        self.port = self.port or free_ports(1)[0]

    def _config(self) -> dict[str, Any]:
        me = {"name": self.name}
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{HOST}:{self.port}"}},
            "plugins": {f"{__name__}.PlatformAuth": me, f"{__name__}.PlatformTopics": me},
        }

    def start(self) -> CloudBroker:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)  # amqtt makes futures on the current loop
            self._loop = loop
            try:
                self._broker = Broker(self._config(), loop=loop)
                loop.run_until_complete(self._broker.start())
            except BaseException as err:  # reported to start()
                errors.append(err)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name=f"cloudbroker-{self.port}", daemon=True)
        self._thread.start()
        ready.wait(20)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        """Shut the broker down (clients see the connection drop); restart with ``start``."""
        loop, broker = self._loop, self._broker
        if loop is None or broker is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(20)
        self._loop = self._broker = self._thread = None

    @property
    def retained(self) -> dict[str, Any]:
        """Topics the broker holds a retained message for (must stay empty where refused)."""
        return dict(self._broker.retained_messages) if self._broker is not None else {}
