"""Every MQTT topic and payload of PRODUCT.md §4, built in one place.

No other module formats a topic. Payload shapes are pinned by the JSON Schemas in
``docs/schema/`` (also shipped in ``gateway/schema/``), which the tests validate real
payloads against.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway import __version__
from gateway.pipeline.ids import uuid7
from gateway.store.db import iso_utc

PAYLOAD_VERSION = 1


@dataclass(frozen=True)
class Topics:
    """The topic tree of one gateway: ``{prefix}/{gateway_id}/…``."""

    prefix: str
    gateway_id: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.gateway_id}" if self.prefix else self.gateway_id

    @property
    def command_base(self) -> str | None:
        return f"{self.base}/cmd"

    @property
    def punches(self) -> str:
        return f"{self.base}/punches"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def health(self) -> str:
        return f"{self.base}/health"

    def terminal_status(self, name: str) -> str:
        return f"{self.base}/terminals/{name}/status"


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def batch(gateway_id: str, records: Iterable[str], sent_at: datetime) -> tuple[str, bytes]:
    """A punches batch from stored JSON records, without re-encoding them.

    Returns ``(batch_id, payload)``. The records are the exact JSON the store committed,
    so draining a backlog costs string joins, not JSON round trips.
    """
    batch_id = str(uuid7())
    head = dumps(
        {
            "v": PAYLOAD_VERSION,
            "gateway": gateway_id,
            "batch_id": batch_id,
            "sent_at": iso_utc(sent_at),
        }
    )
    body = ",".join(records).encode("utf-8")
    return batch_id, head[:-1] + b',"punches":[' + body + b"]}"


def batch_overhead(gateway_id: str) -> int:
    """Bytes a batch adds around its records (to keep messages under the size limits)."""
    _, empty = batch(gateway_id, [], datetime.now().astimezone())
    return len(empty) + 16


def status(state: str, boot_id: str, since: datetime) -> bytes:
    return dumps(
        {
            "v": PAYLOAD_VERSION,
            "state": state,
            "version": __version__,
            "boot_id": boot_id,
            "since": iso_utc(since),
        }
    )


def terminal_status(
    state: str, detail: str | None, since: datetime, extra: Mapping[str, Any] | None = None
) -> bytes:
    body: dict[str, Any] = {"state": state, "detail": detail, "since": iso_utc(since)}
    if extra:
        body.update(extra)
    return dumps(body)


def health(snapshot: Mapping[str, Any]) -> bytes:
    return dumps({"v": PAYLOAD_VERSION, **snapshot})
