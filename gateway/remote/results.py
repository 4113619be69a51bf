"""Result messages of remote commands (issue 16; docs/schema/remote-result.schema.json).

A result: ``{"v":1,"id","gateway","verb","ok","result"|"error","at"}`` (+ ``"duplicate":
true`` when a repeated id gets the stored result back). A result larger than the broker's
message limit (a ``bundle``, a long ``queue.export``) goes out in chunks
(remote-chunk.schema.json): ``{"v":1,"id","gateway","chunk":k,"chunks":n,"data"}`` where
``data`` is base64 of the k-th slice of the result's bytes; the receiver joins the slices
in order and parses the JSON (``gatewayctl remote send`` does). More than
:data:`MAX_CHUNKS` chunks are not sent: the result becomes a ``too_large`` error instead.
Sans-IO: bytes in, bytes out.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from gateway.store.db import iso_utc

MAX_CHUNKS = 64
CHUNK_ENVELOPE = 400  # bytes a chunk message adds around its data (ids, names, keys)


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def success(gateway: str, cmd_id: str, verb: str, result: Any, at: datetime) -> dict[str, Any]:
    return {
        "v": 1,
        "id": cmd_id,
        "gateway": gateway,
        "verb": verb,
        "ok": True,
        "result": result,
        "at": iso_utc(at),
    }


def failure(
    gateway: str, cmd_id: str | None, verb: str | None, error: tuple[str, str], at: datetime
) -> dict[str, Any]:
    """``error`` is ``(kind, message)``."""
    kind, message = error
    return {
        "v": 1,
        "id": cmd_id,
        "gateway": gateway,
        "verb": verb,
        "ok": False,
        "error": {"kind": kind, "message": message},
        "at": iso_utc(at),
    }


def messages(reply: dict[str, Any], limit: int) -> list[bytes]:
    """``reply`` as one message, or as chunks of at most ``limit`` bytes each."""
    body = dumps(reply)
    if len(body) <= limit:
        return [body]
    per = (limit - CHUNK_ENVELOPE) // 4 * 3  # raw bytes per chunk: base64 grows by 4/3
    if per <= 0:
        raise ValueError(f"a message limit of {limit} bytes leaves no room for data")
    n = -(-len(body) // per)
    if n > MAX_CHUNKS:
        too = failure(
            reply["gateway"],
            reply.get("id"),
            reply.get("verb"),
            (
                "too_large",
                f"the result is {len(body)} bytes: more than {MAX_CHUNKS} messages of {limit} "
                "bytes (the broker's limit); ask for less (e.g. queue.export with a later "
                "'since' or a smaller 'limit')",
            ),
            datetime.fromisoformat(str(reply["at"]).replace("Z", "+00:00")),
        )
        return [dumps(too)]
    head = {"v": 1, "id": reply.get("id"), "gateway": reply["gateway"], "verb": reply.get("verb")}
    return [
        dumps(
            {
                **head,
                "chunk": k + 1,
                "chunks": n,
                "data": base64.b64encode(body[k * per : (k + 1) * per]).decode(),
            }
        )
        for k in range(n)
    ]


class Reassembler:
    """The receiver's side: feed every message of one command id; ``done`` gives the reply."""

    def __init__(self) -> None:
        self.parts: dict[int, bytes] = {}
        self.total: int | None = None
        self.reply: dict[str, Any] | None = None

    def feed(self, message: dict[str, Any]) -> dict[str, Any] | None:
        if "chunk" not in message:
            self.reply = message
            return message
        self.total = int(message["chunks"])
        self.parts[int(message["chunk"])] = base64.b64decode(message["data"])
        if len(self.parts) == self.total:
            body = b"".join(self.parts[k] for k in range(1, self.total + 1))
            self.reply = json.loads(body)
            return self.reply
        return None
