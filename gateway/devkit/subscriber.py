"""An MQTT subscriber that records everything it receives: the cloud side of tests and the demo.

``Subscriber(host, port, topics)`` is a paho-mqtt 2.x client (CallbackAPIVersion.VERSION2,
MQTT 5 by default) running paho's own network thread. Every message is appended to a
thread-safe list as a :class:`Received` (topic, payload bytes, retain flag, QoS, receive time).
Subscriptions use *retain as published*, so ``retain`` tells whether the publisher set it, not
only whether the broker replayed it. Subscriptions are (re)made in ``on_connect``, so the
subscriber survives a broker restart.

``punches()`` flattens the batches of ``{prefix}/{gateway}/punches`` (PRODUCT.md §4) into the
list of punch dicts; ``retained(topic)`` gives the last retained message of a topic;
``wait_for(predicate, timeout)`` waits for a condition without fixed sleeps. ``on_message`` lets
the demo print punches as they arrive.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

__all__ = ["Received", "Subscriber"]

log = structlog.get_logger(__name__)
_ids = itertools.count(1)
_MIN_RECHECK_S = 0.005


@dataclass(frozen=True, slots=True)
class Received:
    """One message as the subscriber got it."""

    topic: str
    payload: bytes
    retain: bool
    qos: int
    received_at: float  # time.time()
    received_mono: float  # time.monotonic(), for intervals
    properties: Properties | None = None  # MQTT 5 properties as paho parsed them

    def user_properties(self) -> dict[str, str]:
        """The MQTT 5 user properties (last value wins for repeated keys)."""
        pairs = getattr(self.properties, "UserProperty", None) or []
        return {str(k): str(v) for k, v in pairs}

    def json(self) -> Any:
        """The payload decoded as JSON."""
        return json.loads(self.payload)


class Subscriber:
    """Collects every message on ``topics``; see the module docstring."""

    def __init__(
        self,
        host: str,
        port: int,
        topics: str | Sequence[str] = "#",
        *,
        qos: int = 1,
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | str | None = None,
        cert_file: Path | str | None = None,
        key_file: Path | str | None = None,
        protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
        keepalive: int = 30,
        on_message: Callable[[Received], None] | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        self.qos = qos
        self.protocol = protocol
        self.keepalive = keepalive
        self.on_message = on_message
        self.client_id = client_id or f"test-sub-{os.getpid()}-{next(_ids)}"
        self._messages: list[Received] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self._pending_sub: int | None = None
        self._punch_cache: tuple[list[tuple[str, Any]], int] = ([], 0)
        self.connects = 0
        self.disconnects = 0
        self.last_connect_reason: ReasonCode | None = None
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=protocol
        )
        if username is not None:
            client.username_pw_set(username, password)
        if ca_file is not None:
            client.tls_set(
                ca_certs=str(ca_file),
                certfile=None if cert_file is None else str(cert_file),
                keyfile=None if key_file is None else str(key_file),
            )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        # Sub-second retries so a restarted test broker is found quickly (paho types it int).
        client.reconnect_delay_set(0.1, 1)  # type: ignore[arg-type]
        self.client = client
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> Self:
        """Connect, subscribe, and wait for the SUBACK (raises ``TimeoutError`` otherwise)."""
        if not self._started:
            self.client.connect_async(self.host, self.port, keepalive=self.keepalive)
            self.client.loop_start()
            self._started = True
        if not self._subscribed.wait(timeout):
            reason = self.last_connect_reason
            raise TimeoutError(
                f"subscriber not subscribed to {self.topics} on {self.host}:{self.port} "
                f"within {timeout} s (last CONNACK: {reason})"
            )
        return self

    def stop(self) -> None:
        """Disconnect and end paho's thread; idempotent."""
        if not self._started:
            return
        self._started = False
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- paho callbacks (paho's thread; never raise: an exception would end the loop) -------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: Any,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.last_connect_reason = reason_code
        if reason_code.is_failure:
            log.warning("subscriber_connect_refused", reason=str(reason_code))
            return
        self.connects += 1
        if self.protocol == mqtt.MQTTv5:
            opts = SubscribeOptions(qos=self.qos, retainAsPublished=True)
            _, mid = client.subscribe([(t, opts) for t in self.topics])
        else:
            _, mid = client.subscribe([(t, self.qos) for t in self.topics])
        self._pending_sub = mid

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: Any,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.disconnects += 1
        self._subscribed.clear()

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if mid != self._pending_sub:
            return
        bad = [str(rc) for rc in reason_codes if rc.is_failure]
        if bad:
            log.warning("subscriber_subscribe_refused", topics=self.topics, reasons=bad)
            return
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        received = Received(
            topic=message.topic,
            payload=bytes(message.payload),
            retain=bool(message.retain),
            qos=message.qos,
            received_at=time.time(),
            received_mono=time.monotonic(),
            properties=message.properties,
        )
        with self._cond:
            self._messages.append(received)
            self._cond.notify_all()
        if self.on_message is not None:
            try:
                self.on_message(received)
            except Exception:
                log.exception("subscriber_callback_failed", topic=message.topic)

    # -- reading -----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._subscribed.is_set()

    @property
    def messages(self) -> list[Received]:
        """A copy of everything received so far, in arrival order."""
        with self._cond:
            return list(self._messages)

    def on(self, topic: str) -> list[Received]:
        """Messages received on exactly ``topic``."""
        return [m for m in self.messages if m.topic == topic]

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()
            self._punch_cache = ([], 0)

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 30.0
    ) -> list[Received]:
        """Wait until ``predicate(messages)`` holds; return the messages, or raise TimeoutError.

        The predicate runs at most every few milliseconds, not once per message, so waiting for
        20 000 messages does not cost 20 000 list copies.
        """
        deadline = time.monotonic() + timeout
        while True:
            snapshot = self.messages
            if predicate(snapshot):
                return snapshot
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                topics = sorted({m.topic for m in snapshot})
                raise TimeoutError(
                    f"condition not met within {timeout} s; "
                    f"{len(snapshot)} messages received on {topics}"
                )
            with self._cond:
                if len(self._messages) == len(snapshot):
                    self._cond.wait(min(remaining, 0.5))
            time.sleep(_MIN_RECHECK_S)

    def wait_for_count(self, n: int, topic: str | None = None, timeout: float = 30.0) -> None:
        """Wait until at least ``n`` messages (on ``topic``, if given) have arrived."""
        self.wait_for(
            lambda ms: sum(1 for m in ms if topic is None or m.topic == topic) >= n, timeout
        )

    def wait_for_punches(self, n: int, timeout: float = 30.0, **filters: str) -> list[Any]:
        """Wait until :meth:`punches` holds at least ``n`` punches; return them."""
        self.wait_for(lambda _: len(self.punches(**filters)) >= n, timeout)
        return self.punches(**filters)

    def punches(self, prefix: str | None = None, gateway: str | None = None) -> list[Any]:
        """Every punch in every batch on ``…/punches``, in arrival order (duplicates kept).

        Batches are decoded once and cached (as ``(topic, punch)``), then filtered.
        """
        with self._cond:
            decoded, upto = self._punch_cache
            fresh = self._messages[upto:]
            upto = len(self._messages)
        decoded = decoded + [
            (m.topic, p) for m in fresh if _is_punch_topic(m.topic, None, None)
            for p in _batch_punches(m)
        ]  # fmt: skip
        with self._cond:
            if upto >= self._punch_cache[1]:
                self._punch_cache = (decoded, upto)
        return [p for t, p in decoded if _is_punch_topic(t, prefix, gateway)]

    def batches(self, prefix: str | None = None, gateway: str | None = None) -> list[Any]:
        """The decoded batch payloads on ``…/punches``."""
        return [m.json() for m in self.messages if _is_punch_topic(m.topic, prefix, gateway)]

    def retained(self, topic: str) -> Received | None:
        """The last message published with retain on ``topic`` (None if none or cleared)."""
        for m in reversed(self.messages):
            if m.topic == topic and m.retain:
                return m if m.payload else None
        return None


def _is_punch_topic(topic: str, prefix: str | None, gateway: str | None) -> bool:
    head, sep, tail = topic.rpartition("/")
    if not sep or tail != "punches" or "/" not in head:
        return False
    topic_prefix, _, topic_gw = head.rpartition("/")
    return (prefix is None or topic_prefix == prefix) and (gateway is None or topic_gw == gateway)


def _batch_punches(message: Received) -> list[Any]:
    batch = message.json()
    punches = batch.get("punches", []) if isinstance(batch, dict) else []
    return punches if isinstance(punches, list) else []
