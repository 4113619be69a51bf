"""Manual punches: validated, published with source=manual (schema-valid), audited, and the
audit survives pruning; with the daemon stopped they wait in the store for the next start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.devkit.subscriber import Subscriber
from gateway.store.db import Store
from tests.cli.conftest import start_and_wait
from tests.pipeline.harness import validate, wait_until

ZONE = ZoneInfo("Asia/Shanghai")


def _manual(sub: Subscriber) -> list[dict[str, object]]:
    return [p for p in sub.punches() if p.get("source") == "manual"]


def test_manual_punch_published_audited_and_survives_prune(tmp_path, mosquitto, subscriber,
                                                           gateway_factory, ctl):
    sub = subscriber(mosquitto.port, "attendance/#")
    gp = start_and_wait(gateway_factory(mqtt={"host": "127.0.0.1", "port": mosquitto.port},
                                        terminals=[{"name": "lobby", "driver": "virtual"}]))
    cfg = gp.config
    when = (datetime.now(ZONE) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    env = {"SUDO_USER": "tech-li", "SSH_CONNECTION": "10.1.2.3 52100 10.1.2.50 22"}
    r = ctl(cfg, "punch", "add", "--terminal", "lobby", "--user", "1001", "--time", when,
            "--state", "check_in", "--reason", "fingerprint reader wet; confirmed by Wang",
            "--json", env=env)
    assert r.rc == 0, r.err
    event_id = r.json()["event_id"]
    assert event_id.startswith("manual-") and r.json()["via"] == "daemon"
    sub.wait_for(lambda _: len(_manual(sub)) >= 1, 30)
    (punch,) = _manual(sub)
    validate(punch, "punch.schema.json")
    assert punch["event_id"] == event_id and punch["verify"] == "manual"
    assert punch["entered_by"] == "tech-li (ssh from 10.1.2.3)"
    assert punch["reason"] == "fingerprint reader wet; confirmed by Wang"
    assert punch["time"] == when + ":00+08:00" and punch["state"] == "check_in"

    # Refusals, each naming the field (exit 2).
    future = (datetime.now(ZONE) + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")
    old = (datetime.now(ZONE) - timedelta(days=61)).strftime("%Y-%m-%dT%H:%M")
    for args, word in (
        (["--terminal", "nosuch", "--user", "1", "--time", when, "--state", "check_in"],
         "--terminal"),
        (["--terminal", "lobby", "--user", "1 OR 1=1", "--time", when, "--state", "check_in"],
         "--user"),
        (["--terminal", "lobby", "--user", "1", "--time", future, "--state", "check_in"],
         "future"),
        (["--terminal", "lobby", "--user", "1", "--time", old, "--state", "check_in"], "60 days"),
        (["--terminal", "lobby", "--user", "1", "--time", "yesterday", "--state", "check_in"],
         "--time"),
        (["--terminal", "lobby", "--user", "1", "--time", when, "--state", "lunch"], "--state"),
    ):
        bad = ctl(cfg, "punch", "add", *args, "--reason", "x")
        assert bad.rc == 2 and word in bad.err, (args, bad.err)
    blank = ctl(cfg, "punch", "add", "--terminal", "lobby", "--user", "1", "--time", when,
                "--state", "check_in", "--reason", "   ")
    assert blank.rc == 2 and "--reason" in blank.err

    audit = ctl(cfg, "punch", "audit", "--json")
    assert audit.rc == 0 and [a["event_id"] for a in audit.json()] == [event_id]
    assert audit.json()[0]["entered_by"] == "tech-li (ssh from 10.1.2.3)"
    wait_until(lambda: ctl(cfg, "queue", "--json").json()["pending"] == 0, 30, "delivered")
    assert gp.terminate() == 0

    # Offline: straight into the store; published when the daemon starts again.
    r = ctl(cfg, "punch", "add", "--terminal", "lobby", "--user", "1002", "--time", when,
            "--state", "check_out", "--reason", "terminal was unplugged", env=env)
    assert r.rc == 0 and "published at its next start" in r.out
    assert ctl(cfg, "queue", "--json").json()["pending"] == 1
    start_and_wait(gp)
    sub.wait_for(lambda _: len(_manual(sub)) >= 2, 30)
    validate(_manual(sub)[1], "punch.schema.json")
    wait_until(lambda: ctl(cfg, "queue", "--json").json()["pending"] == 0, 30, "delivered")
    assert gp.terminate() == 0

    db = cfg.parent / "gw-data" / "gateway.db"
    with Store(db, clock=_Later()) as store:
        assert store.prune(0) >= 2  # every delivered punch is gone...
        assert store.query("SELECT count(*) FROM punches WHERE event_id LIKE 'manual-%'") == [
            (0,)]
    audit = ctl(cfg, "punch", "audit", "--json").json()  # ...the audit log is not
    assert len(audit) == 2 and {a["user_id"] for a in audit} == {"1001", "1002"}


class _Later:
    """A clock a day ahead, so that prune(0) sees every delivered punch as old."""

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(days=1)

    def monotonic(self) -> float:
        return 0.0
