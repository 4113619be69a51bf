"""Issue 16: the audit and replay cache in a real store: claim before run, repeats, expiry,
the refusal cap, and an audit that survives the punches' pruning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.remote.ledger import Ledger, recent
from gateway.store.db import Store

T0 = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


def _begin(ledger: Ledger, cmd_id: str, sig: str = "s1", keep_min: int = 5):
    return ledger.begin(T0, cmd_id=cmd_id, sig=sig, keep_until=T0 + timedelta(minutes=keep_min),
                        issuer="ops", verb="punch.add", args={"approver": "Li", "x": 1})


def test_claim_repeat_replay_and_expiry(tmp_path):
    with Store(tmp_path / "g.db") as store:
        ledger = Ledger(store)
        audit_id, seen = _begin(ledger, "c1")
        assert seen is None and audit_id
        assert _begin(ledger, "c1")[1].state == "running"  # claimed, no result yet
        ledger.finish(audit_id, "c1", T0, ok=True, kind=None, detail=None,
                      result_json='{"ok":true}')
        dup = _begin(ledger, "c1")[1]
        assert dup.state == "duplicate" and dup.result == '{"ok":true}'
        assert _begin(ledger, "c1", sig="other")[1].state == "replayed"
        row = recent(store)[0]
        assert (row["outcome"], row["issuer"], row["approver"]) == ("done", "ops", "Li")
        assert ledger.forget_expired(T0 + timedelta(minutes=10)) == 1
        assert _begin(ledger, "c1")[1] is None  # forgotten after expiry (then refused as expired)
        store.prune(0)  # the punches' pruning leaves the audit alone
        assert len(recent(store)) == 2


def test_refusals_are_capped_accepted_commands_kept(tmp_path):
    with Store(tmp_path / "g.db") as store:
        ledger = Ledger(store)
        _begin(ledger, "keep-me")
        for i in range(30):
            ledger.refused(T0, kind="bad_signature", detail=f"r{i}", cmd_id=f"r{i}")
        ledger.forget_expired(T0, refusals_kept=10)
        rows = recent(store, 100)
        refused = [r for r in rows if r["outcome"] == "refused"]
        assert len(refused) == 10 and refused[0]["cmd_id"] == "r29"
        assert any(r["cmd_id"] == "keep-me" for r in rows)


def test_remote_support_is_off_without_keys(tmp_path):
    from gateway.appliance.daemon import Daemon
    from gateway.config import load
    from tests.pipeline.harness import write_config

    cfg = load(write_config(tmp_path / "gw.toml",
                            gateway={"data_dir": str(tmp_path / "d"),
                                     "control_socket": str(tmp_path / "s")},
                            mqtt={"host": "127.0.0.1", "port": 1}, terminals=[]))
    daemon = Daemon(cfg)
    try:
        assert daemon.remote is None and daemon.publisher._cmd_topic is None  # no subscription
    finally:
        daemon.store.close()
