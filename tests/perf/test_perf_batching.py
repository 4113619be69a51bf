"""Issue 18: a long backlog under a publish-rate cap fills messages to the byte limit.

AWS IoT allows 100 publishes/s per connection: at ``batch_max_punches = 50`` a week of a
5 000-person factory (140 000 punches) took 28 s. Counted here: messages published for a
backlog (no timing), with a real mosquitto, and what the store holds after ``stop()``.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.config import MqttSection
from gateway.pipeline.punch import Punch
from gateway.store.db import Store
from gateway.uplink.publisher import Publisher
from tests.pipeline.harness import wait_until


def punches(n: int) -> list[Punch]:
    t0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    return [Punch(event_id=f"zk-T-{i:08d}", terminal="t", driver="zk", user_id=str(1000 + i % 500),
                  time=t0 + timedelta(seconds=i)) for i in range(n)]


def drain(tmp_path: Path, port: int, n: int, rate: float, name: str) -> tuple[int, int]:
    """(messages published, rows still pending in the file after stop())."""
    db = tmp_path / f"{name}.db"
    store = Store(db)
    for i in range(0, n, 5000):
        store.add(punches(n)[i : i + 5000])
    cfg = MqttSection(host="127.0.0.1", port=port, tls=False, client_id=f"pub-{name}",
                      batch_max_punches=50, max_publish_rate=rate, max_message_bytes=128 * 1024)
    pub = Publisher(cfg, f"gw-{name}", store, boot_id="b")
    pub.start()
    try:
        wait_until(lambda: store.figures()["pending"] == 0, 300, "backlog acked")
    finally:
        pub.stop()
        store.close()
    with sqlite3.connect(db) as c:
        (left,) = c.execute("SELECT count(*) FROM punches WHERE status=0").fetchone()
    return pub.state.published, left


def test_a_long_backlog_fills_messages_to_the_byte_limit(tmp_path, mosquitto):
    # 100 publishes/s x 50 punches x 10 s = 50 000: a longer backlog fills messages
    msgs, left = drain(tmp_path, mosquitto.port, 60_000, 100.0, "long")
    assert left == 0  # stop() wrote every deferred delivered mark
    assert msgs < 60_000 // 50 // 2, msgs  # at 50 per message it would be 1 200


def test_a_short_backlog_keeps_batch_max_punches(tmp_path, mosquitto):
    msgs, left = drain(tmp_path, mosquitto.port, 2_000, 100.0, "short")
    assert left == 0
    assert msgs == 2_000 // 50


def test_no_rate_cap_keeps_batch_max_punches(tmp_path, mosquitto):
    """Uncapped (a local broker): the window, not the rate, is the limit; sizes unchanged."""
    msgs, left = drain(tmp_path, mosquitto.port, 60_000, 1e6, "uncapped")
    assert left == 0 and msgs == 60_000 // 50
