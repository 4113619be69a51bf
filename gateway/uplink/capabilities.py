"""What this broker allows, learnt at every connect (issue 19, PRODUCT.md §9).

Three sources, the strictest wins: the profile's documented limits, the config
(``max_inflight``, ``max_message_bytes``, ``max_publish_rate``), and what the broker says:

* MQTT 5 CONNACK properties: Retain Available, Maximum QoS, Maximum Packet Size, Receive
  Maximum, Topic Alias Maximum (paho reads them but honours none: notes/store-and-forward.md
  §0). They are read afresh on every connect: a broker may change after an upgrade.
* Refusals: a CONNACK or DISCONNECT with 0x9A "Retain not supported" (Mosquitto with
  ``retain_available false`` refuses a CONNECT whose will is retained, forever if the client
  insists: the bug of issue 19). MQTT 3.1.1 has no code for it: Mosquitto just closes the
  socket before CONNACK (retained will) or after a retained PUBLISH (reproduced with
  Mosquitto 2.0.11 while writing this module): two closes before any CONNACK with a retained
  will (``link``), or three closes in a row with a retained message in flight, teach the same.

What is learnt about retain is kept for the life of the process (a broker does not start
accepting retained messages between two reconnects). Nothing here touches delivery: punches
are QoS 1 and delivered only on a successful PUBACK whatever the broker allows; a broker that
allows QoS 0 only gets no punches at all (held, fault 6), never unacknowledged ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog

from gateway.uplink.profiles import Limits

log = structlog.get_logger(__name__)

RETAIN_NOT_SUPPORTED = 0x9A
QOS_NOT_SUPPORTED = 0x9B
# Room for the fixed header, the topic and the properties of a PUBLISH (Maximum Packet Size
# counts the whole packet, our limits count the payload).
PACKET_OVERHEAD = 64


@dataclass
class Capabilities:
    """The effective limits for the current connection (``as_dict`` is for status/doctor)."""

    retain: bool = True
    will: bool = True
    will_retain: bool = True
    qos1: bool = True  # False: the broker allows QoS 0 only, punches are held
    window: int = 20
    max_message_bytes: int = 128 * 1024
    max_publish_rate: float = 80.0
    topic_alias_maximum: int = 0  # read and reported; the gateway sends no aliases
    why: dict[str, str] = field(default_factory=dict)  # capability -> where it was learnt

    def as_dict(self) -> dict[str, Any]:
        return {
            "retain": self.retain,
            "will": self.will and (self.will_retain or not self.retain),
            "qos1": self.qos1,
            "window": self.window,
            "max_message_bytes": self.max_message_bytes,
            "max_publish_rate": self.max_publish_rate,
            "topic_alias_maximum": self.topic_alias_maximum,
            "why": dict(self.why),
        }


class CapabilityModel:
    """Merges profile, config and broker; owned by the publisher thread."""

    def __init__(self, limits: Limits, cfg: Any, profile: str = "generic") -> None:
        self.limits = limits
        self.cfg = cfg
        self.profile = profile
        self._retain_refused: str | None = None  # sticky: why retain is off
        self._suspect_closes = 0  # 3.1.1: closes that look like a retain refusal
        self.current = self._base()

    def _base(self) -> Capabilities:
        c = Capabilities(window=self.cfg.max_inflight, max_message_bytes=self.cfg.max_message_bytes,
                         max_publish_rate=self.cfg.max_publish_rate)  # fmt: skip
        lim = self.limits
        if not lim.retain:
            c.retain = False
            c.why["retain"] = f"profile {self.profile}: the platform keeps no retained messages"
        if not lim.will:
            c.will = False
            c.why["will"] = f"profile {self.profile}: the platform refuses a last will"
        if lim.max_message_bytes and lim.max_message_bytes < c.max_message_bytes:
            c.max_message_bytes = lim.max_message_bytes
            c.why["max_message_bytes"] = f"profile {self.profile}"
        if lim.max_publish_rate and lim.max_publish_rate < c.max_publish_rate:
            c.max_publish_rate = lim.max_publish_rate
            c.why["max_publish_rate"] = f"profile {self.profile}"
        if self._retain_refused:
            c.retain = False
            c.will_retain = False
            c.why["retain"] = self._retain_refused
        c.will_retain = c.retain
        return c

    # -- what the link should send at the next CONNECT ---------------------------------------
    @property
    def will(self) -> tuple[bool, bool]:
        """``(send a will, retain it)`` for the next CONNECT."""
        c = self.current
        return c.will, c.will and c.retain

    # -- learning ------------------------------------------------------------------------
    def on_connack(self, props: dict[str, int], topic_len: int) -> Capabilities:
        """A new connection: start from profile + config, then apply the CONNACK."""
        c = self._base()
        if props.get("RetainAvailable") == 0:
            c.retain = c.will_retain = False
            c.why["retain"] = "CONNACK: Retain Available = 0"
        if props.get("MaximumQoS") == 0:
            c.qos1 = False
            c.why["qos1"] = "CONNACK: Maximum QoS = 0 (punches need a PUBACK: held)"
        if (rmax := props.get("ReceiveMaximum")) and rmax < c.window:
            c.window = rmax
            c.why["window"] = f"CONNACK: Receive Maximum = {rmax}"
        if mps := props.get("MaximumPacketSize"):
            limit = mps - topic_len - PACKET_OVERHEAD
            if limit < c.max_message_bytes:
                c.max_message_bytes = max(256, limit)
                c.why["max_message_bytes"] = f"CONNACK: Maximum Packet Size = {mps}"
        c.topic_alias_maximum = props.get("TopicAliasMaximum", 0)
        c.window = max(1, c.window)
        self.current = c
        return c

    def retain_refused(self, why: str) -> None:
        """The broker said (0x9A) or showed that it refuses retained messages."""
        if self._retain_refused is None:
            log.warning("broker refuses retained messages: status and health go unretained, "
                        "re-sent periodically", why=why)  # fmt: skip
        self._retain_refused = why
        self.current.retain = self.current.will_retain = False
        self.current.why["retain"] = why

    def on_disconnect(self, code: int, reason: str, retained_in_flight: bool) -> dict[str, Any]:
        """A connection ended; returns the capabilities for the state/status."""
        if code == RETAIN_NOT_SUPPORTED:
            self.retain_refused(f"the broker disconnected us: {reason}")
        else:
            self.closed(retained_in_flight=retained_in_flight, protocol=self.cfg.protocol)
        return self.current.as_dict()

    def retained_acked(self) -> None:
        """A retained message got its PUBACK: retain works, earlier closes were the link."""
        self._suspect_closes = 0

    def closed(self, *, retained_in_flight: bool, protocol: str) -> None:
        """A connection ended without "Retain not supported" (the link itself handles a
        close before CONNACK with a retained will)."""
        if protocol == "5" or not retained_in_flight or not self.current.retain:
            self._suspect_closes = 0
            return
        self._suspect_closes += 1
        if self._suspect_closes >= 3:  # three in a row: not a flapping link
            self.retain_refused(
                "the broker closed the connection 3 times in a row on a retained message "
                "(MQTT 3.1.1 has no code for 'Retain not supported')"
            )
