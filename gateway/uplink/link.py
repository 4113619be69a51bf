"""The paho-mqtt 2.x client, configured once, whose callbacks only hand work over.

Traps this module exists to avoid (notes/store-and-forward.md §0, §2):

* ``CallbackAPIVersion.VERSION2`` explicitly (paho 2.2 still defaults to VERSION1).
* Callbacks never touch SQLite and never call back into paho: they put an event on a queue
  that the publisher thread owns (paho issues #354, #226, #177: deadlocks otherwise).
* paho keeps unacked QoS1 copies in memory and re-sends them on reconnect behind our back;
  ``drop_out_messages()`` in ``on_connect`` (before paho's re-send loop, which runs right
  after the callback) makes SQLite the only queue.
* ``on_disconnect`` can fire twice for one loss (paho #870): consumers must be idempotent.
* A ``publish()`` that returns ``MQTT_ERR_NO_CONN`` may still be delivered: only a PUBACK
  counts, so return codes are never used as delivery evidence.
* Issue 19: paho re-sends the same CONNECT forever. A broker that refuses the retained will
  (CONNACK 0x9A, or a bare close before CONNACK under MQTT 3.1.1) would refuse every retry,
  so the will loses its retain flag right in the callback, before paho's next attempt; and
  credentials that depend on the time (profiles) are recomputed before every attempt.
"""

from __future__ import annotations

import queue
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.config import MqttSection
from gateway.uplink.profiles import Credentials

# PUBACK reason codes that can never succeed on retry: dead-letter (PRODUCT.md §4).
PERMANENT_PUBACK = {0x83, 0x87, 0x90, 0x95, 0x99}
# Disconnect reasons that mean "the broker refused what we sent", as opposed to a lost link
# (0x80 unspecified = socket closed, 0x8D keep-alive timeout, 0x8B server shutting down).
# Mosquitto 2.0.11 closes the socket on a message over message_size_limit and paho reports
# 0x82 "Protocol error" (reproduced while writing this module); a broker kill shows 0x80.
REFUSING_DISCONNECT = {0x81, 0x82, 0x83, 0x87, 0x93, 0x95, 0x97, 0x99}
# MQTT 5 CONNACK properties read at every connect (gateway.uplink.capabilities).
CONNACK_PROPS = ("RetainAvailable", "MaximumQoS", "MaximumPacketSize", "ReceiveMaximum",
                 "TopicAliasMaximum")  # fmt: skip
# CONNACK failures that are the fault-6 "broker refused login or TLS".
LOGIN_REFUSED = {0x84, 0x85, 0x86, 0x87, 0x8A, 0x8C}


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """What a paho callback reports, for the publisher thread to act on."""

    kind: str  # "connected" | "refused" | "disconnected" | "ack" | "connect_failed" (+ control)
    generation: int = 0
    mid: int = 0
    code: int = 0
    reason: str = ""
    receive_maximum: int | None = None
    maximum_packet_size: int | None = None
    connack: dict[str, int] | None = None  # MQTT 5 CONNACK properties (capabilities)
    data: Any = None  # for the publisher's own control events (wake, retained, stop)


def reason_value(rc: Any) -> int:
    return int(rc.value) if isinstance(rc, ReasonCode) else int(rc)


class MqttLink:
    """Owns one paho ``Client``; events go to ``self.events``."""

    def __init__(
        self,
        cfg: MqttSection,
        will_topic: str,
        will_payload: bytes,
        events: queue.SimpleQueue[LinkEvent],
        generation: int = 0,
        *,
        tls_context: ssl.SSLContext | None = None,
        credentials: Callable[[], Credentials] | None = None,
        will: tuple[bool, bool] = (True, True),
    ) -> None:
        """``tls_context`` replaces ``make_tls_context(cfg)`` (e.g. one that reports its
        handshakes, see ``gateway.uplink.tls_watch``); it is used only when ``cfg.tls``.
        ``credentials`` computes the login for each attempt (default: the config's);
        ``will`` is ``(send a will, retain it)``."""
        self.cfg = cfg
        self.events = events
        # Bumped on every connect; acks carry it so an ack from an old connection can never
        # be credited to a message of the new one that happens to reuse its mid.
        self.generation = generation
        self._credentials = credentials or (
            lambda: Credentials(cfg.client_id or "", cfg.username, cfg.password)
        )
        creds = self._credentials()
        self.expires_at, self.issued_at = creds.expires_at, time.time()
        self._will = (will_topic, will_payload, will[1]) if will[0] else None
        self._connacked = self._any_connack = False
        self._bare_closes = 0  # closes before any CONNACK (MQTT 3.1.1 retain refusal)
        v5 = cfg.protocol == "5"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=creds.client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else True,
        )
        self.client.suppress_exceptions = True  # a bug in a callback must not kill the loop
        # Our own window limits what is in flight; paho must never queue behind our back.
        self.client.max_inflight_messages_set(0)
        self.client.max_queued_messages_set(0)
        # Jitter so a fleet of gateways does not reconnect in lockstep after a cloud outage
        # (notes/store-and-forward.md §1.3, thundering herd); capped at 5 s because the
        # backlog must drain within seconds of the link's return (PRODUCT.md §7).
        self.client.reconnect_delay_set(min_delay=1 + int(random.random() * 2), max_delay=5)
        if creds.username:
            self.client.username_pw_set(creds.username, creds.password)
        if cfg.tls:
            self.client.tls_set_context(tls_context or make_tls_context(cfg))
        if self._will is not None:
            self.client.will_set(will_topic, will_payload, qos=1, retain=self._will[2])
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_connect_fail = self._on_connect_fail

    # -- callbacks (paho's thread): hand over, nothing else ------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, props: Any) -> None:
        try:
            code = reason_value(rc)
            self._any_connack = True
            if code >= 0x80:
                if code == 0x9A:  # Retain not supported: the next attempt without it
                    self._unretain_will()
                elif code == 0x9B and self._will is not None:  # QoS not supported (max QoS 0)
                    self.client.will_set(self._will[0], self._will[1], qos=0, retain=False)
                self._refresh()
                self.events.put(LinkEvent("refused", self.generation, code=code, reason=str(rc)))
                return
            client.drop_out_messages()  # SQLite is the only queue: see module docstring
            self._connacked, self._bare_closes = True, 0
            self.generation += 1
            self.events.put(
                LinkEvent(
                    "connected",
                    self.generation,
                    code=code,
                    reason=str(rc),
                    receive_maximum=getattr(props, "ReceiveMaximum", None),
                    maximum_packet_size=getattr(props, "MaximumPacketSize", None),
                    connack={k: int(getattr(props, k)) for k in CONNACK_PROPS if hasattr(props, k)},
                )
            )
        except Exception as err:
            self.events.put(LinkEvent("disconnected", self.generation, reason=repr(err)))

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        connacked, self._connacked = self._connacked, False
        bare, self._any_connack = not self._any_connack, False
        code = reason_value(rc)
        if code == 0x9A:
            self._unretain_will()
        elif bare and self.cfg.protocol != "5" and self._will is not None and self._will[2]:
            # MQTT 3.1.1: Mosquitto closes the socket before CONNACK on a retained will.
            self._bare_closes += 1
            if self._bare_closes >= 2:
                self._unretain_will()
                self.events.put(LinkEvent("refused", self.generation, code=0x9A, reason=(
                    "closed before CONNACK twice with a retained will (MQTT 3.1.1: "
                    "no code for Retain not supported)")))  # fmt: skip
        self._refresh()
        self.events.put(
            LinkEvent(
                "disconnected",
                self.generation,
                code=code,
                reason=str(rc),
                data={"connacked": connacked},
            )
        )

    def _unretain_will(self) -> None:
        if self._will is not None and self._will[2]:
            topic, payload, _ = self._will
            self._will = (topic, payload, False)
            self.client.will_set(topic, payload, qos=1, retain=False)

    def _refresh(self) -> None:
        """New credentials for paho's next attempt (signatures with a time in them)."""
        try:
            creds = self._credentials()
            self.client.username_pw_set(creds.username, creds.password)
            # paho has no setter for the client id; Huawei's embeds the hour it signs.
            self.client._client_id = creds.client_id.encode()
            self.expires_at, self.issued_at = creds.expires_at, time.time()
        except Exception as err:  # a bad secret must not kill paho's thread
            self.events.put(LinkEvent("refused", self.generation, code=0x86, reason=repr(err)))

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: Any, _p: Any) -> None:
        self.events.put(
            LinkEvent("ack", self.generation, mid=mid, code=reason_value(rc), reason=str(rc))
        )

    def _on_connect_fail(self, _c: Any, _u: Any) -> None:
        self._refresh()
        self.events.put(LinkEvent("connect_failed", self.generation))

    # -- used by the publisher thread ----------------------------------------------------
    @property
    def renew_at(self) -> float | None:
        """Epoch seconds after which the login should be renewed: at 80 % of its life, and
        never sooner than 5 s after it was issued (a token born expired cannot loop)."""
        if self.expires_at is None:
            return None
        return self.issued_at + max(5.0, (self.expires_at - self.issued_at) * 0.8)

    def start(self) -> None:
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
        self.client.loop_start()  # paho names its thread "paho-mqtt-client-<client id>"

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int:
        props = None
        if self.cfg.protocol == "5":
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.ContentType = "application/json"
            props.PayloadFormatIndicator = 1
        info = self.client.publish(topic, payload, qos=1, retain=retain, properties=props)
        return int(info.mid)

    def stop(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


def make_tls_context(cfg: MqttSection) -> ssl.SSLContext:
    """System CAs by default, ``ca_file`` for a private CA, ``cert_file``/``key_file`` for mTLS.

    Verification (chain and host name) is always on; there is no switch to turn it off.
    """
    ctx = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cfg.cert_file and cfg.key_file:
        ctx.load_cert_chain(str(cfg.cert_file), str(cfg.key_file))
    return ctx
