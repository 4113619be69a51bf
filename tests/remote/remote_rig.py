"""Helpers for the remote-command tests (issue 16): keys, envelopes, a raw MQTT side."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.devkit.subscriber import Received, Subscriber
from gateway.pipeline.ids import uuid7
from gateway.remote import envelope as env

GATEWAY = "gw-test"
BASE = f"attendance/{GATEWAY}"
REQ, RES = f"{BASE}/cmd/req", f"{BASE}/cmd/res"


class KeyRing:
    """Private keys by name; ``toml()`` lists the public halves a gateway trusts."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.keys = {name: env.new_private_key() for name in ("ops", "viewer", "stranger")}
        self.verbs = {"ops": ["*"], "viewer": ["status", "doctor", "terminals"]}

    def file(self, name: str) -> Path:
        p = self.tmp / f"{name}.key"
        if not p.exists():
            p.write_bytes(env.private_key_pem(self.keys[name]))
            p.chmod(0o600)
        return p

    def toml(self, **opts: Any) -> str:
        lines = ["[remote]"] + [f"{k} = {json.dumps(v)}" for k, v in opts.items()]
        for name, verbs in self.verbs.items():
            lines += ["[[remote.keys]]", f'name = "{name}"',
                      f'public_key = "{env.public_key_text(self.keys[name])}"',
                      f"verbs = {json.dumps(verbs)}"]
        return "\n".join(lines) + "\n"

    def sign(self, verb: str, args: dict[str, Any] | None = None, *, key: str = "ops",
             issuer: str | None = None, issued: datetime | None = None, ttl: int = 300,
             cmd_id: str | None = None) -> dict[str, Any]:
        issued = issued or datetime.now(UTC)
        return env.make(verb, args or {}, issuer=issuer or key, issued_at=issued,
                        expires_at=issued + timedelta(seconds=ttl),
                        cmd_id=cmd_id or str(uuid7()), key=self.keys[key])


def publish(sub: Subscriber, payload: bytes | dict[str, Any], *,
            response_topic: str | None = None, correlation: bytes | None = None) -> None:
    """Publish a raw request with the subscriber's own client (QoS 1)."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    props = Properties(PacketTypes.PUBLISH)
    if response_topic:
        props.ResponseTopic = response_topic
    if correlation:
        props.CorrelationData = correlation
    sub.client.publish(REQ, data, qos=1, properties=props)


def results(sub: Subscriber, topic: str = RES) -> list[dict[str, Any]]:
    return [m.json() for m in sub.on(topic)]


def wait_result(sub: Subscriber, cmd_id: str | None, *, after: int = 0, timeout: float = 60.0,
                topic: str = RES) -> dict[str, Any]:
    """The first (unchunked) result for ``cmd_id`` among the results after index ``after``."""
    def match(ms: list[Received]) -> bool:
        return any(r.get("id") == cmd_id and "chunk" not in r
                   for r in [m.json() for m in ms if m.topic == topic][after:])
    sub.wait_for(match, timeout)
    return next(r for r in results(sub, topic)[after:] if r.get("id") == cmd_id
                and "chunk" not in r)


def db_counts(db: Path) -> dict[str, int]:
    """What a refused command must not change (read with a separate connection)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        q = {"punches": "SELECT count(*) FROM punches",
             "manual": "SELECT count(*) FROM manual_audit",
             "pending": "SELECT count(*) FROM punches WHERE status=0",
             "remote_ids": "SELECT count(*) FROM remote_ids"}
        return {k: conn.execute(sql).fetchone()[0] for k, sql in q.items()}
    finally:
        conn.close()


def audit_rows(db: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM remote_audit ORDER BY id")]
    finally:
        conn.close()
