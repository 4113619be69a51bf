"""The publisher's side of remote commands (issue 16): subscribe, hand messages over, send
results behind the punches. A mixin of :class:`gateway.uplink.publisher.Publisher`, kept in
its own module so the publisher's delivery logic stays as it is.

* On every connect (clean session) the publisher thread subscribes to the command topic at
  QoS 1. paho's ``on_message`` only wraps the message in an :class:`Inbound` and hands it to
  the inbox (the remote service's bounded queue); no store, no paho calls there (the same
  rule as ``gateway.uplink.link``).
* Results wait in a bounded queue and are published only with what the punches leave of
  the in-flight window and of the rate budget, after ``_fill_window`` on the same thread:
  a flood of commands never delays a punch (bench/remote_flood.py measures it).
* A result is sent at most once (QoS 1, but not re-sent after a disconnect): the operator
  repeats the command's id and gets the stored result (docs/remote.md).
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from gateway.config import MqttSection
    from gateway.uplink.link import LinkEvent, MqttLink

log = structlog.get_logger(__name__)

RESULTS_MAX = 256  # result messages waiting behind the punches
PROPS_ROOM = 512  # bytes kept for the topic and the MQTT 5 properties


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message on the command topic, as paho's callback hands it over."""

    payload: bytes
    response_topic: str | None = None  # MQTT 5 Response Topic
    correlation: bytes | None = None  # MQTT 5 Correlation Data


class RemoteHook:
    """Mixin: needs the publisher's ``cfg``, ``_link``, ``_events``, ``_inflight``,
    ``_window``, ``_tokens``, ``_max_bytes`` and ``_result_flight``."""

    cfg: MqttSection
    _link: MqttLink | None
    _events: queue.SimpleQueue[LinkEvent]
    _inflight: dict[int, Any]
    _window: int
    _tokens: float
    _max_bytes: int

    def _result_flight(self, mid: int) -> None:
        raise NotImplementedError

    def _init_remote_hook(self) -> None:
        self._cmd_topic: str | None = None
        self._cmd_inbox: Callable[[Inbound], None] | None = None
        self._results: deque[tuple[str, bytes, bytes | None]] = deque()
        self.results_dropped = 0

    # -- public API --------------------------------------------------------------------------
    def attach_commands(self, topic: str, inbox: Callable[[Inbound], None]) -> None:
        """Subscribe to ``topic`` on every connect; each message goes to ``inbox``, called on
        paho's thread (it must only hand over). Call before ``start()``."""
        self._cmd_topic, self._cmd_inbox = topic, inbox

    def send_result(self, topic: str, payload: bytes, correlation: bytes | None = None) -> bool:
        """Queue a result message; False (and counted) when the queue is full or the message
        is larger than the broker takes (:attr:`result_limit`)."""
        from gateway.uplink.link import LinkEvent

        if len(self._results) >= RESULTS_MAX or len(payload) > self.result_limit:
            self.results_dropped += 1
            return False
        self._results.append((topic, payload, correlation))
        self._events.put(LinkEvent("wake"))
        return True

    @property
    def result_limit(self) -> int:
        """The largest result payload the broker takes now (config, capped by CONNACK)."""
        return max(256, self._max_bytes - PROPS_ROOM)

    @property
    def results_waiting(self) -> int:
        return len(self._results)

    # -- the publisher thread ------------------------------------------------------------------
    def _hook_commands(self, link: MqttLink) -> None:
        if self._cmd_topic is not None:
            link.client.on_message = self._on_command

    def _subscribe_commands(self) -> None:
        if self._cmd_topic is not None and self._link is not None:
            self._link.client.subscribe(self._cmd_topic, qos=1)

    def _send_results(self) -> None:
        """Results use what the punches left of the window and of the rate budget."""
        if not self._results or self._link is None:
            return
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        while self._results and len(self._inflight) < self._window and self._tokens >= 1.0:
            topic, payload, correlation = self._results.popleft()
            if len(payload) > self.result_limit:  # the limit shrank on a reconnect
                self.results_dropped += 1
                continue
            props = None
            if self.cfg.protocol == "5":
                props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                props.ContentType = "application/json"
                props.PayloadFormatIndicator = 1
                if correlation is not None:
                    props.CorrelationData = correlation
            info = self._link.client.publish(topic, payload, qos=1, properties=props)
            self._result_flight(int(info.mid))
            self._tokens -= 1.0

    # -- paho's thread -------------------------------------------------------------------------
    def _on_command(self, _client: Any, _userdata: Any, msg: Any) -> None:
        """Hand the message over, nothing else."""
        inbox = self._cmd_inbox
        if inbox is None:
            return
        try:
            props = getattr(msg, "properties", None)
            topic = getattr(props, "ResponseTopic", None)
            corr = getattr(props, "CorrelationData", None)
            inbox(
                Inbound(
                    bytes(msg.payload),
                    topic if isinstance(topic, str) and topic else None,
                    bytes(corr) if isinstance(corr, bytes | bytearray) else None,
                )
            )
        except Exception:  # a bad message must not reach paho's loop
            log.exception("remote command hand-over failed")
