"""Issue 13, problem 1: ``queue resend`` and ``queue resend --dead`` take effect on a
connected daemon without a reconnect (the publisher's cursor rewinds), and re-sends are
counted apart from first deliveries."""

from __future__ import annotations

from collections import Counter

from gateway.store.db import Store
from gateway.store.schema import recount
from tests.cli.conftest import start_and_wait
from tests.pipeline.harness import wait_until, write_punch_file


def test_live_resend_and_dead_resend_drain_without_reconnect(
    tmp_path, mosquitto, subscriber, gateway_factory, ctl
):
    sub = subscriber(mosquitto.port, "attendance/+/punches")
    log = tmp_path / "lobby.jsonl"
    ids = write_punch_file(log, 240)
    gp = start_and_wait(
        gateway_factory(
            mqtt={"host": "127.0.0.1", "port": mosquitto.port},
            terminals=[{"name": "lobby", "driver": "virtual", "file": str(log)}],
        )
    )
    cfg = gp.config
    db = cfg.parent / "gw-data" / "gateway.db"

    def figures() -> dict[str, int]:
        r = ctl(cfg, "queue", "--json")
        assert r.rc in (0, 1), r.err
        return r.json()

    sub.wait_for_punches(240, timeout=60)
    wait_until(lambda: figures()["pending"] == 0, 60, "first delivery")
    connects = gp.log().count("broker connected")

    r = ctl(cfg, "queue", "resend", "--since", "2000-01-01T00:00", "--json")
    assert r.rc == 0 and r.json() == {"requeued": 240, "via": "daemon"}, r.err
    # Before the fix these stayed pending until the broker link was re-made (> 75 s seen).
    sub.wait_for_punches(480, timeout=60)
    wait_until(lambda: figures()["pending"] == 0, 60, "re-sent rows delivered")
    seen = Counter(p["event_id"] for p in sub.punches())
    assert set(seen) == set(ids) and set(seen.values()) == {2}
    fig = figures()
    assert fig["received_today"] == 240 and fig["delivered_today"] == 240
    assert fig["resent_today"] == 240  # counted apart: delivered never exceeds received

    # Re-queued by another process (the daemon was not told): the idle publisher notices.
    with Store(db) as store:
        assert store.requeue(since=None) == 240
    sub.wait_for_punches(720, timeout=60)
    wait_until(lambda: figures()["pending"] == 0, 60, "third delivery")

    # Dead letters, as the publisher records a refused publish, then `resend --dead`.
    with Store(db) as store, store._write() as conn:  # a refused batch, as the publisher
        conn.execute(  # records it (Store.dead_letter only takes pending rows)
            "UPDATE punches SET status=2, dead_reason='Not authorized' WHERE seq <= 10"
        )
        recount(conn)
    assert figures()["dead_lettered"] == 10
    before = len(sub.punches())
    r = ctl(cfg, "queue", "resend", "--dead", "--json")
    assert r.rc == 0 and r.json() == {"requeued": 10, "via": "daemon"}, r.err
    sub.wait_for_punches(before + 10, timeout=60)
    wait_until(lambda: figures()["pending"] == 0, 60, "dead letters delivered")
    assert figures()["dead_lettered"] == 0
    assert gp.log().count("broker connected") == connects  # no reconnect did it
    assert gp.terminate() == 0
