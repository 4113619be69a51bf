"""Issue 13, problem 2 (PRODUCT.md §7): pruning delivered punches never makes a terminal's
old records come back as new punches, however the terminal is read again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from drivers.zk_terminal.sim import ZkSimulator
from gateway.store.db import Store
from tests.cli.conftest import start_and_wait
from tests.pipeline.harness import wait_until

CMD_CONNECT = 1000


class _Later:
    """A clock a day ahead, so that prune(0) sees every delivered punch as old."""

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(days=1)

    def monotonic(self) -> float:
        return 0.0


def test_pruned_zk_records_are_not_published_again(
    tmp_path, mosquitto, subscriber, gateway_factory, ctl
):
    tz = ZoneInfo("Asia/Shanghai")
    sim = ZkSimulator(tz=tz, serial="PRUNE0000001").start()
    try:
        sim.bulk_load(300)
        sub = subscriber(mosquitto.port, "attendance/+/punches")
        gp = start_and_wait(
            gateway_factory(
                mqtt={"host": "127.0.0.1", "port": mosquitto.port},
                terminals=[
                    {"name": "lobby", "driver": "zk", "host": "127.0.0.1", "port": sim.port,
                     "poll_interval_s": 5, "timeout_s": 3, "sync_clock": False}
                ],
            )
        )
        cfg = gp.config
        db = cfg.parent / "gw-data" / "gateway.db"

        def queue() -> dict[str, int]:
            return ctl(cfg, "queue", "--json").json()

        sub.wait_for_punches(300, timeout=60)
        wait_until(lambda: queue()["pending"] == 0, 60, "all delivered")

        # Retention passes while the daemon runs: every delivered row is pruned.
        with Store(db, clock=_Later()) as store:
            assert store.prune(0) == 300
        assert queue()["last_seq"] == 300

        # The terminal drops the link; the runner reopens, which downloads the whole log.
        connects = sim.commands.count(CMD_CONNECT)
        sim.reboot()
        wait_until(lambda: sim.commands.count(CMD_CONNECT) > connects, 60, "a reconnect")
        # A marker at the end of the log (no live event): once it is published, the
        # download that holds it, and the 300 pruned records before it, were handled.
        sim.bulk_load(1, start=sim.now(), users=1, first_user=3001)
        sub.wait_for(lambda _: any(p["user_id"] == "3001" for p in sub.punches()), 60)
        wait_until(lambda: queue()["pending"] == 0, 60, "marker delivered")

        # And again after a daemon restart (open() hands out everything).
        assert gp.terminate() == 0
        sim.bulk_load(1, start=sim.now() + timedelta(seconds=1), users=1, first_user=3002)
        start_and_wait(gp)
        sub.wait_for(lambda _: any(p["user_id"] == "3002" for p in sub.punches()), 60)
        wait_until(lambda: queue()["pending"] == 0, 60, "second marker delivered")

        published = sub.punches()
        assert len({p["event_id"] for p in published}) == 302
        assert len(published) == 302, "pruned records were published again as new punches"
        assert [p["seq"] for p in published[300:]] == [301, 302]
        assert queue()["last_seq"] == 302
        assert gp.terminate() == 0
    finally:
        sim.stop()
