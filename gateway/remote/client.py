"""The operator's side of remote support (``gatewayctl remote send``, issue 16): publish a
signed envelope on ``{prefix}/{gateway}/cmd/req`` and wait for its result on
``.../cmd/res`` (or on a Response Topic of ours, MQTT 5), joining chunks.

It is a short-lived client with its own client id, so it never takes the gateway's
connection (one connection per device on some cloud brokers, notes/field.md).
"""

from __future__ import annotations

import json
import os
import queue
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any

from gateway.remote.results import Reassembler


class SendError(Exception):
    """The command could not be sent or no result came in time."""


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    tls: bool = False
    ca_file: str | None = None
    username: str | None = None
    password: str | None = None
    protocol: str = "5"


def topics(prefix: str, gateway: str) -> tuple[str, str]:
    base = f"{prefix}/{gateway}" if prefix else gateway
    return f"{base}/cmd/req", f"{base}/cmd/res"


def send(
    broker: Broker,
    envelope: dict[str, Any],
    *,
    prefix: str,
    gateway: str,
    timeout: float = 30.0,
    response_topic: str | None = None,
) -> dict[str, Any]:
    """Publish ``envelope`` and return the gateway's result (``SendError`` on timeout)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    req, res = topics(prefix, gateway)
    v5 = broker.protocol == "5"
    listen = response_topic if (v5 and response_topic) else res
    cmd_id = str(envelope.get("id"))
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
    subscribed = threading.Event()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"gatewayctl-remote-{os.getpid()}-{int(time.time() * 1000) % 100000}",
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
    )
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls:
        ctx = ssl.create_default_context(cafile=broker.ca_file)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        client.tls_set_context(ctx)

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if not rc.is_failure:
            c.subscribe(listen, qos=1)
        else:
            inbox.put(SendError(f"broker refused the connection: {rc}"))

    def on_subscribe(_c: Any, _u: Any, _mid: Any, _rc: Any, _p: Any) -> None:
        subscribed.set()

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        inbox.put(msg)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    deadline = time.monotonic() + timeout
    try:
        client.connect(broker.host, broker.port, keepalive=30)
    except OSError as err:
        raise SendError(f"cannot connect to {broker.host}:{broker.port}: {err}") from None
    client.loop_start()
    try:
        if not subscribed.wait(max(0.1, deadline - time.monotonic())):
            raise SendError(f"no subscription to {listen} within {timeout:.0f} s")
        props = None
        if v5:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.CorrelationData = cmd_id.encode()
            if response_topic:
                props.ResponseTopic = response_topic
        client.publish(req, json.dumps(envelope).encode(), qos=1, properties=props)
        return _wait(inbox, cmd_id, deadline, timeout)
    finally:
        client.disconnect()
        client.loop_stop()


def _wait(
    inbox: queue.SimpleQueue[Any], cmd_id: str, deadline: float, timeout: float
) -> dict[str, Any]:
    joiner = Reassembler()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SendError(
                f"no result for {cmd_id} within {timeout:.0f} s (the gateway may be offline or "
                "busy with punches: send the same envelope again to get its stored result)"
            )
        try:
            item = inbox.get(timeout=left)
        except queue.Empty:
            continue
        if isinstance(item, SendError):
            raise item
        try:
            message = json.loads(item.payload)
        except ValueError:
            continue
        if not isinstance(message, dict) or message.get("id") != cmd_id:
            continue  # someone else's result on the shared topic
        reply = joiner.feed(message)
        if reply is not None:
            return reply
