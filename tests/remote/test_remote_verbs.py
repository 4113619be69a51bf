"""Issue 16, end to end: every remote verb through a real mosquitto to the real daemon
process, its result back on ``cmd/res`` (chunked when larger than the broker's limit), the
MQTT 5 Response Topic and Correlation Data honoured, and the audit with issuer/approver."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from tests.pipeline.harness import validate, wait_until
from tests.remote.remote_rig import RES, audit_rows, db_counts, results


def test_status_doctor_terminals(rig):
    status = rig.ask("status")
    assert status["ok"] and status["verb"] == "status" and status["gateway"] == "gw-test"
    assert {"terminals", "queue", "faults"} <= set(status["result"])
    assert status["result"]["remote"]["topic"] == "attendance/gw-test/cmd/req"
    assert status["result"]["remote"]["counts"].get("done", 0) >= 1  # the rig's first status
    doctor = rig.ask("doctor")
    assert doctor["ok"]
    names = [c["name"] for c in doctor["result"]["checks"]]
    assert "config" in names and "daemon" in names and "terminal lobby" in names
    terms = rig.ask("terminals")["result"]["terminals"]
    assert set(terms) == {"t1", "lobby"}


def test_terminal_actions_run_on_the_terminal(rig):
    wait_until(lambda: rig.ask("terminals")["result"]["terminals"]["lobby"]["state"] == "online",
               60, "lobby online", interval=0.5)
    probe = rig.ask("terminal.probe", {"terminal": "lobby"})
    assert probe["ok"], probe
    assert probe["result"]["runner"]["state"] == "online"
    pulled = rig.ask("terminal.pull", {"terminal": "lobby"})
    assert pulled["ok"], pulled
    synced = rig.ask("terminal.sync_clock", {"terminal": "lobby"})
    assert synced["ok"], synced
    missing = rig.ask("terminal.probe", {"terminal": "nope"})
    assert not missing["ok"] and missing["error"]["kind"] == "not_found"


def test_queue_export_and_resend_with_approver(rig):
    wait_until(lambda: db_counts(rig.db)["punches"] >= 50 and db_counts(rig.db)["pending"] == 0,
               60, "the first punches delivered")
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    export = rig.ask("queue.export", {"since": since, "limit": 5})
    assert export["ok"] and export["result"]["count"] == 5 and export["result"]["truncated"]
    assert {"event_id", "status", "seq"} <= set(export["result"]["punches"][0])
    refused = rig.ask("queue.resend", {"since": since})
    assert not refused["ok"] and refused["error"]["kind"] == "approver_required"
    resend = rig.ask("queue.resend", {"since": since, "approver": "Li (site manager)"})
    assert resend["ok"] and resend["result"]["requeued"] >= 50
    # issue 13: a connected publisher drains the re-queued rows at once, no reconnect needed
    from gateway.store.db import Store

    def resent() -> int:
        with Store(rig.db, readonly=True) as s:
            return int(s.figures().get("resent_today", 0))

    wait_until(lambda: resent() >= 50 and db_counts(rig.db)["pending"] == 0, 60,
               "the re-sent punches delivered again")


def test_punch_add_is_audited_with_issuer_and_approver(rig):
    before = db_counts(rig.db)
    args = {"terminal": "t1", "user_id": "4242", "state": "check_in",
            "time": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
            "reason": "fingerprint not read", "approver": "Wang (HR)"}
    reply = rig.ask("punch.add", args)
    assert reply["ok"] and reply["result"]["added"] == 1, reply
    event_id = reply["result"]["event_id"]
    wait_until(lambda: any(p["event_id"] == event_id for p in rig.sub.punches()), 60,
               "the manual punch published")
    punches = [p for p in rig.sub.punches() if p["event_id"] == event_id]
    assert punches[0]["source"] == "manual"
    assert "remote:ops" in punches[0]["entered_by"] and "Wang (HR)" in punches[0]["entered_by"]
    assert db_counts(rig.db)["manual"] == before["manual"] + 1
    # the technician's view of the audit: `gatewayctl remote audit --json`
    out = subprocess.run([sys.executable, "-m", "gateway", "--config", str(rig.config),
                          "remote", "audit", "--json", "--limit", "500"],
                         capture_output=True, text=True, check=True, timeout=60)
    rows = json.loads(out.stdout)
    mine = [r for r in rows if r["cmd_id"] == reply["id"]]
    assert len(mine) == 1 and mine[0]["outcome"] == "done"
    assert mine[0]["issuer"] == "ops" and mine[0]["approver"] == "Wang (HR)"
    assert mine[0]["verb"] == "punch.add" and event_id in mine[0]["result"]
    # a remote queue.resend of our own (xdist may run the export/resend test elsewhere)
    since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    resend = rig.ask("queue.resend", {"since": since, "approver": "Li (site manager)"})
    assert resend["ok"], resend
    out = subprocess.run([sys.executable, "-m", "gateway", "--config", str(rig.config),
                          "remote", "audit", "--json", "--limit", "500"],
                         capture_output=True, text=True, check=True, timeout=60)
    rows = json.loads(out.stdout)
    resends = [r for r in rows if r["cmd_id"] == resend["id"]]
    assert resends and resends[0]["outcome"] == "done"
    assert resends[0]["approver"] == "Li (site manager)" and resends[0]["issuer"] == "ops"


def test_log_level_and_a_chunked_bundle(rig):
    level = rig.ask("log.level", {"level": "debug"})
    assert level["ok"] and level["result"]["level"] == "debug"
    assert rig.ask("log.level", {"level": "info"})["result"]["was"] == "debug"
    bad = rig.ask("log.level", {"level": "loud"})
    assert not bad["ok"] and bad["error"]["kind"] == "bad_request"
    bundle = rig.ask("bundle")
    assert bundle["ok"], bundle
    b = bundle["result"]
    assert {"config", "status", "doctor", "store", "remote_audit", "versions"} <= set(b)
    assert "[[remote.keys]]" in b["config"]
    assert any(r["verb"] == "punch.add" for r in b["remote_audit"]) or b["remote_audit"]
    def chunks() -> list:
        return [r for r in results(rig.sub) if r.get("id") == bundle["id"] and "chunk" in r]
    # the test's own subscriber may see the last chunk a moment after the operator's client
    wait_until(lambda: chunks() and len(chunks()) == chunks()[0]["chunks"], 30, "all chunks")
    assert len(chunks()) > 1, "a bundle larger than 4 KiB travels in chunks"
    assert all(len(json.dumps(c)) <= 4096 for c in chunks())


def test_response_topic_and_correlation_data(rig):
    reply = rig.ask("status", response_topic="support/desk-7")
    assert reply["ok"]
    def on_topic() -> list:
        return [m for m in rig.sub.on("support/desk-7") if m.json().get("id") == reply["id"]]
    wait_until(on_topic, 30, "the result on the Response Topic")
    wait_until(lambda: any(r.get("id") == reply["id"] for r in results(rig.sub, RES)), 30,
               "the result on the fixed topic")
    assert on_topic()[0].properties.CorrelationData == reply["id"].encode()
    rows = [r for r in audit_rows(rig.db) if r["cmd_id"] == reply["id"]]
    assert rows and rows[0]["outcome"] == "done"


def test_every_message_on_the_result_topics_matches_its_schema(rig):
    # enough traffic of our own: under xdist the other tests may run on another worker
    for verb in ("status", "terminals", "shell", "status", "terminals", "shell"):  # + refusals
        rig.ask(verb)
    for _ in range(5):
        rig.ask("status")
    msgs = [m.json() for m in rig.sub.messages if m.topic == RES or m.topic.startswith("support/")]
    assert len(msgs) > 10
    for m in msgs:
        validate(m, "remote-chunk.schema.json" if "chunk" in m else "remote-result.schema.json")
    validate(rig.keys.sign("punch.add", {"approver": "x"}), "remote-command.schema.json")


def _ctl(*argv: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway", *argv], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def test_gatewayctl_remote_keygen_sign_send(rig, tmp_path):
    r = _ctl("remote", "keygen", "--name", "carol", "--out", str(tmp_path / "c.key"))
    assert r.returncode == 0 and 'name = "carol"' in r.stdout and "public_key" in r.stdout
    assert (tmp_path / "c.key").stat().st_mode & 0o777 == 0o600
    again = _ctl("remote", "keygen", "--name", "carol", "--out", str(tmp_path / "c.key"))
    assert again.returncode == 2 and "never overwritten" in again.stderr
    signed = _ctl("--config", str(tmp_path / "none.toml"), "remote", "sign", "queue.resend",
                  "--key", str(rig.keys.file("ops")), "--issuer", "ops",
                  "--arg-json", "dead=true", "--arg", "approver=Li")
    env_obj = json.loads(signed.stdout)
    assert env_obj["args"] == {"dead": True, "approver": "Li"}
    validate(env_obj, "remote-command.schema.json")
    (tmp_path / "env.json").write_text(signed.stdout)
    broker = ["--host", "127.0.0.1", "--port", str(rig.broker.port), "--no-tls",
              "--gateway", "gw-test", "--prefix", "attendance"]
    sent = _ctl("--config", str(tmp_path / "none.toml"), "remote", "send", "--envelope",
                str(tmp_path / "env.json"), *broker, "--json")
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["result"] == {"requeued": 0}
    # the carol key is not in the gateway's config: refused, exit 1, a clear reason
    denied = _ctl("--config", str(tmp_path / "none.toml"), "remote", "send", "status",
                  "--key", str(tmp_path / "c.key"), "--issuer", "carol", *broker)
    assert denied.returncode == 1 and "unknown_key" in denied.stderr


def test_the_support_bundle_carries_the_remote_audit(rig, tmp_path):
    import tarfile

    rig.ask("status")
    out = tmp_path / "b.tar.gz"
    r = _ctl("--config", str(rig.config), "bundle", "--output", str(out))
    assert r.returncode == 0, r.stderr
    with tarfile.open(out) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/remote_audit.json"))
        rows = json.loads(tar.extractfile(member).read())
    assert rows and {"issuer", "verb", "outcome", "approver"} <= set(rows[0])
