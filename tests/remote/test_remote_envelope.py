"""Issue 16, sans-IO: the canonical encoding, Ed25519 sign/verify, the [remote] config
section, and result chunking (bytes in, bytes out; no broker needed)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import parse
from gateway.errors import ConfigError
from gateway.remote import envelope as env
from gateway.remote import results
from gateway.remote.settings import RemoteSection

KEY = env.new_private_key()
PUB = base64.b64decode(env.public_key_text(KEY))
NOW = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
RING = [env.Key("ops", PUB, frozenset({"*"}))]


def _sign(verb: str = "status", args: dict | None = None) -> dict:
    return env.make(verb, args or {}, issuer="ops", issued_at=NOW,
                    expires_at=NOW + timedelta(minutes=5), cmd_id="c-1", key=KEY)


def test_canonical_form_is_sorted_compact_utf8_without_sig():
    obj = {"b": 1, "a": {"y": "é", "x": [1, 2]}, "sig": "zzz"}
    assert env.canonical(obj) == '{"a":{"x":[1,2],"y":"é"},"b":1}'.encode()


def test_signature_covers_the_canonical_bytes_and_verifies():
    obj = _sign("punch.add", {"user_id": "1", "n": 3})
    Ed25519PublicKey.from_public_bytes(PUB).verify(base64.b64decode(obj["sig"]),
                                                   env.canonical(obj))
    e = env.parse(json.dumps(obj, indent=3).encode())  # whitespace on the wire is irrelevant
    assert env.verify(e, RING).name == "ops" and e.verb == "punch.add"


@settings(max_examples=200, deadline=None)
@given(args=st.dictionaries(st.text(max_size=10),
                            st.integers() | st.text(max_size=20) | st.booleans() | st.none(),
                            max_size=5),
       flip=st.integers(min_value=0))
def test_any_args_round_trip_and_any_changed_byte_fails(args, flip):
    obj = _sign("status", args)
    e = env.parse(json.dumps(obj).encode())
    env.verify(e, RING)
    body = bytearray(e.signed)
    body[flip % len(body)] ^= 0x01
    bad = env.Envelope(e.id, e.verb, e.args, e.issuer, e.issued_at, e.expires_at, e.sig,
                       bytes(body))
    with pytest.raises(env.Refusal) as r:
        env.verify(bad, RING)
    assert r.value.kind == "bad_signature"


@pytest.mark.parametrize(("payload", "kind"), [
    (b"", "malformed"), (b"x" * (env.MAX_BYTES + 1), "malformed"), (b"NaN", "malformed"),
    (b'{"v":1}', "unsigned"), (b'{"sig":"AA==","v":1}', "malformed"),
])
def test_bad_payloads_have_a_kind(payload, kind):
    with pytest.raises(env.Refusal) as r:
        env.parse(payload)
    assert r.value.kind == kind and r.value.message


def test_lone_surrogates_and_floats_are_malformed():
    obj = _sign()
    obj["args"] = {"s": "\ud800"}
    with pytest.raises(env.Refusal, match="Unicode"):
        env.parse(json.dumps(obj).encode())
    obj["args"] = {"f": 0.1}
    with pytest.raises(env.Refusal, match="integers"):
        env.parse(json.dumps(obj).encode())


def _cfg(remote: dict) -> dict:
    return {"gateway": {"id": "g", "timezone": "UTC"}, "mqtt": {"host": "h", "tls": False},
            "leds": {"backend": "null"}, "remote": remote}


def test_remote_is_off_without_keys_and_keys_are_validated():
    base = {"gateway": {"id": "g", "timezone": "UTC"}, "mqtt": {"host": "h", "tls": False},
            "leds": {"backend": "null"}}
    assert parse(base).remote == RemoteSection() and not parse(base).remote.enabled
    ok = parse(_cfg({"keys": [{"name": "ops", "public_key": env.public_key_text(KEY),
                               "verbs": ["status", "punch.add"]}]})).remote
    assert ok.enabled and ok.keys[0].allows("punch.add") and not ok.keys[0].allows("bundle")
    with pytest.raises(ConfigError) as err:
        parse(_cfg({"rate_per_min": 0, "typo": 1, "keys": [
            {"name": "a b", "public_key": "AAAA", "verbs": ["shell"]},
            {"name": "x", "public_key": env.public_key_text(KEY), "verbs": "status"}]}))
    text = "\n".join(map(str, err.value.issues))
    for expected in ("remote.rate_per_min", "remote.typo", "remote.keys[0].name",
                     "remote.keys[0].public_key", "remote.keys[0].verbs",
                     "remote.keys[1].verbs"):
        assert expected in text, text


@settings(max_examples=100, deadline=None)
@given(size=st.integers(min_value=0, max_value=200_000),
       limit=st.integers(min_value=1024, max_value=20_000))
def test_results_are_chunked_under_the_limit_and_reassemble(size, limit):
    reply = results.success("g", "c-1", "bundle", {"blob": "é" * size}, NOW)
    parts = results.messages(reply, limit)
    assert all(len(p) <= limit for p in parts)
    joiner = results.Reassembler()
    got = [joiner.feed(json.loads(p)) for p in reversed(parts)][-1]
    if len(parts) > results.MAX_CHUNKS or json.loads(parts[0]).get("ok") is False:
        assert got["error"]["kind"] == "too_large"
    else:
        assert got == json.loads(results.dumps(reply))
