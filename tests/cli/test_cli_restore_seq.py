"""Issue 13, problem 4: after ``restore`` of an older backup the next punch's ``seq`` is above
every ``seq`` ever published (one seq never names two punches), and the daemon's lock, not
a socket ping, keeps restore and a daemon apart."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.store.lock import StoreLock
from tests.cli.conftest import start_and_wait
from tests.pipeline.harness import wait_until, write_punch_file

ZONE = ZoneInfo("Asia/Shanghai")


def test_restore_keeps_seq_above_everything_published(tmp_path, mosquitto, subscriber,
                                                      gateway_factory, ctl):
    sub = subscriber(mosquitto.port, "attendance/+/punches")
    log = tmp_path / "lobby.jsonl"
    write_punch_file(log, 20)
    gp = start_and_wait(gateway_factory(
        mqtt={"host": "127.0.0.1", "port": mosquitto.port},
        terminals=[{"name": "lobby", "driver": "virtual", "file": str(log)}]))
    cfg = gp.config
    data = cfg.parent / "gw-data"

    def queue() -> dict[str, int]:
        return ctl(cfg, "queue", "--json").json()

    def manual(user: str, minutes: int) -> None:
        when = (datetime.now(ZONE) - timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M")
        r = ctl(cfg, "punch", "add", "--terminal", "lobby", "--user", user, "--time", when,
                "--state", "check_in", "--reason", "restore test")
        assert r.rc == 0, r.err

    sub.wait_for_punches(20, timeout=60)
    assert ctl(cfg, "backup", "--output", str(tmp_path / "old.db")).rc == 0
    for i in range(5):  # published after the backup: seq 21..25, only in the current store
        manual(f"20{i}", 10 + i)
    sub.wait_for_punches(25, timeout=60)
    wait_until(lambda: queue()["pending"] == 0, 60, "all delivered")
    assert gp.terminate() == 0
    before = max(p["seq"] for p in sub.punches())
    assert before == 25

    r = ctl(cfg, "restore", str(tmp_path / "old.db"))
    assert r.rc == 0, r.err

    # While the data directory's lock is held (a restore in progress), no daemon starts.
    with StoreLock(data):
        gp.start()
        assert gp.proc is not None and gp.proc.wait(60) == 1
        assert "locked" in gp.log()
    start_and_wait(gp)
    manual("3001", 5)
    sub.wait_for(lambda _: any(p["user_id"] == "3001" for p in sub.punches()), 60)
    wait_until(lambda: queue()["pending"] == 0, 60, "new punch delivered")
    by_seq: dict[int, set[str]] = defaultdict(set)
    for p in sub.punches():
        by_seq[p["seq"]].add(p["event_id"])
    assert all(len(ids) == 1 for ids in by_seq.values()), {
        s: ids for s, ids in by_seq.items() if len(ids) > 1}
    (new,) = [p for p in sub.punches() if p["user_id"] == "3001"]
    assert new["seq"] > before
    assert gp.terminate() == 0


def test_restore_refused_while_the_daemon_holds_its_lock(tmp_path, mosquitto, gateway_factory,
                                                         ctl):
    gp = start_and_wait(gateway_factory(
        mqtt={"host": "127.0.0.1", "port": mosquitto.port},
        terminals=[{"name": "lobby", "driver": "virtual"}]))
    cfg = gp.config
    assert ctl(cfg, "backup", "--output", str(tmp_path / "b.db")).rc == 0
    # The control socket is gone (deleted by hand, or a different path in the config):
    # a ping finds no daemon, the lock still does.
    (tmp_path / "gw.sock").unlink()
    r = ctl(cfg, "restore", str(tmp_path / "b.db"))
    assert r.rc == 1 and "daemon is running" in r.err, r.err
    assert not list((cfg.parent / "gw-data").glob("gateway.db.before-restore-*"))
    gp.kill()
