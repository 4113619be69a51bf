"""The publisher in-process against a real broker: it outlives store read errors."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from gateway.config import MqttSection
from gateway.pipeline.punch import Punch
from gateway.store.db import Row, Store
from gateway.uplink.publisher import Publisher
from tests.pipeline.harness import wait_until


class FlakyStore(Store):
    """A real store whose first reads of the backlog fail, as on a failing SD card."""

    failures = 2

    def pending(self, after_seq: int = 0, limit: int = 50) -> list[Row]:
        if self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("disk I/O error")
        return super().pending(after_seq, limit)


def test_publisher_survives_store_read_errors(tmp_path, mosquitto, subscriber):
    sub = subscriber(mosquitto.port, "attendance/#")
    store = FlakyStore(tmp_path / "g.db")
    store.add([Punch(event_id=f"e{i}", terminal="t", driver="virtual", user_id="7",
                     time=datetime(2026, 11, 23, 8, 0, tzinfo=UTC)) for i in range(10)])
    cfg = MqttSection(host="127.0.0.1", port=mosquitto.port, tls=False, client_id="pub-test")
    pub = Publisher(cfg, "gw-test", store, boot_id="b")
    pub.start()
    try:
        sub.wait_for_punches(10, timeout=30)
        wait_until(lambda: store.figures()["pending"] == 0, 30, "all marked delivered")
        assert store.failures == 0
        assert pub._thread.is_alive()
    finally:
        pub.stop()
        store.close()
