"""Issue 16: unsigned, badly signed, wrong-key, unknown-key, forbidden, expired, replayed and
malformed envelopes (also fuzzed with hypothesis) are refused through the real broker with a
clear result, audited, and change nothing; a repeated envelope gets its stored result."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gateway.remote.envelope import FIELDS
from tests.remote.remote_rig import RES, audit_rows, db_counts, publish, results, wait_result


def _punch_args() -> dict:
    return {"terminal": "t1", "user_id": "777", "state": "check_out", "reason": "test",
            "time": (datetime.now(UTC) - timedelta(minutes=30)).isoformat(),
            "approver": "Zhao (HR)"}


def _refused(rig, payload, kind: str, cmd_id: str | None = None, **kw) -> dict:
    before = db_counts(rig.db)
    n = len(results(rig.sub))
    publish(rig.sub, payload, **kw)
    if cmd_id is None:
        rig.sub.wait_for(lambda ms: len([m for m in ms if m.topic == RES]) > n, 60)
        reply = results(rig.sub)[n]
    else:
        reply = wait_result(rig.sub, cmd_id, after=n)
    assert reply["ok"] is False and reply["error"]["kind"] == kind, reply
    assert reply["error"]["message"]
    after = db_counts(rig.db)
    assert after["manual"] == before["manual"] and after["punches"] == before["punches"]
    assert after["remote_ids"] == before["remote_ids"], "a refused command is never claimed"
    row = audit_rows(rig.db)[-1]
    assert row["outcome"] == "refused" and row["kind"] == kind
    return reply


def test_each_kind_of_bad_envelope_is_refused_and_changes_nothing(rig):
    keys = rig.keys
    good = keys.sign("punch.add", _punch_args())
    unsigned = {k: v for k, v in good.items() if k != "sig"}
    _refused(rig, unsigned, "unsigned", good["id"])
    tampered = {**good, "args": {**good["args"], "user_id": "778"}}
    _refused(rig, tampered, "bad_signature", good["id"])
    wrong_key = keys.sign("punch.add", _punch_args(), key="stranger", issuer="ops")
    _refused(rig, wrong_key, "bad_signature", wrong_key["id"])
    unknown = keys.sign("punch.add", _punch_args(), key="stranger")
    _refused(rig, unknown, "unknown_key", unknown["id"])
    forbidden = keys.sign("punch.add", _punch_args(), key="viewer")
    _refused(rig, forbidden, "forbidden_verb", forbidden["id"])
    old = datetime.now(UTC) - timedelta(minutes=20)
    expired = keys.sign("punch.add", _punch_args(), issued=old, ttl=600)
    _refused(rig, expired, "expired", expired["id"])
    future = keys.sign("punch.add", _punch_args(), issued=datetime.now(UTC) + timedelta(hours=1))
    _refused(rig, future, "not_yet_valid", future["id"])
    too_long = keys.sign("punch.add", _punch_args(), ttl=2 * 86400)
    _refused(rig, too_long, "validity_too_long", too_long["id"])
    shell = keys.sign("shell", {"cmd": "id"})
    _refused(rig, shell, "unknown_verb", shell["id"])
    _refused(rig, b"\x00garbage", "malformed")
    _refused(rig, b"[1, 2]", "malformed")
    _refused(rig, b'{"v":1,"v":1,"sig":"x"}', "malformed")
    floaty = keys.sign("status", {})
    floaty["args"] = {"timeout_s": 1.5}
    _refused(rig, floaty, "malformed", floaty["id"])


def test_an_unverified_command_never_gets_a_response_topic(rig):
    bogus = rig.keys.sign("status", key="stranger")
    _refused(rig, bogus, "unknown_key", bogus["id"], response_topic="support/evil",
             correlation=b"x")
    assert not rig.sub.on("support/evil")


def test_replayed_id_is_refused_and_a_repeat_gets_the_stored_result(rig):
    first = rig.keys.sign("punch.add", _punch_args())
    n = len(results(rig.sub))
    publish(rig.sub, first)
    done = wait_result(rig.sub, first["id"], after=n)
    assert done["ok"], done
    counts = db_counts(rig.db)
    # the same envelope again (e.g. the operator's retry): the stored result, nothing re-run
    n = len(results(rig.sub))
    publish(rig.sub, first)
    again = wait_result(rig.sub, first["id"], after=n)
    assert again["duplicate"] is True and again["result"] == done["result"]
    assert db_counts(rig.db)["manual"] == counts["manual"]
    assert audit_rows(rig.db)[-1]["outcome"] == "duplicate"
    # another envelope reusing the id: replayed
    other = rig.keys.sign("punch.add", {**_punch_args(), "user_id": "999"}, cmd_id=first["id"])
    _refused(rig, other, "replayed", first["id"])


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids,
                                                              max_size=3),
    max_leaves=10,
)
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def _answered(rig, data: bytes) -> dict:
    n = len(results(rig.sub))
    publish(rig.sub, data)
    rig.sub.wait_for(lambda ms: len([m for m in ms if m.topic == RES]) > n, 60)
    return results(rig.sub)[n]


@pytest.fixture(scope="module")
def fuzz_base(rig):
    return rig.keys.sign("punch.add", _punch_args(), ttl=3000)


@FUZZ
@given(field=st.sampled_from([*FIELDS, "extra"]), value=JSONISH, drop=st.booleans())
def test_fuzzed_mutations_of_a_signed_envelope_are_refused(rig, fuzz_base, field, value, drop):
    mutated = dict(fuzz_base)
    if drop and field in mutated:
        del mutated[field]
    else:
        mutated[field] = value
    assume(mutated != fuzz_base)
    before = db_counts(rig.db)
    reply = _answered(rig, json.dumps(mutated).encode())
    assert reply["ok"] is False and reply["error"]["kind"] and reply["error"]["message"]
    assert _stable(db_counts(rig.db)) == _stable(before)


@FUZZ
@given(st.binary(max_size=300) | JSONISH.map(lambda v: json.dumps(v).encode()))
def test_fuzzed_payloads_are_refused_with_a_clear_result(rig, raw):
    before = db_counts(rig.db)
    reply = _answered(rig, raw)
    assert reply["ok"] is False and reply["error"]["kind"] in (
        "malformed", "unsigned", "bad_signature")
    assert _stable(db_counts(rig.db)) == _stable(before)


def _stable(counts: dict) -> dict:
    """What a refusal must not change (``pending`` moves while the publisher drains)."""
    return {k: v for k, v in counts.items() if k != "pending"}
