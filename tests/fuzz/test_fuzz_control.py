"""Issue 7: fuzz the control-socket request parser (``ControlServer.handle_line``) of a real
``Daemon`` (built, not running: its runners and publisher are not started, its store is real).

Property: any line gets a JSON-serialisable reply ``{"ok": ...}``; a bad request is answered
with a clear error, and the catch-all for handler bugs ("control request failed") is never
reached."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.appliance.daemon import Daemon
from gateway.config import load
from tests.pipeline.harness import write_config

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
# led_test plays the LED sequence (seconds); the others answer at once.
COMMANDS = ["ping", "status", "probe", "sync_clock", "pull", "resend", "punch", "nope", ""]
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids,
                                                              max_size=4),
    max_leaves=15,
)
PUNCH_KEYS = st.sampled_from(["terminal", "user", "user_id", "time", "state", "reason",
                              "entered_by", "verify"])
REQUESTS = st.fixed_dictionaries(
    {"cmd": st.sampled_from(COMMANDS) | JSONISH},
    optional={"terminal": st.sampled_from(["t1", "nope"]) | JSONISH,
              "timeout_s": st.sampled_from([0.01, 0.1]) | JSONISH,
              "since": st.sampled_from(["2026-11-23T00:00:00Z", "yesterday"]) | JSONISH,
              "dead": JSONISH,
              "punch": st.dictionaries(PUNCH_KEYS, JSONISH | st.sampled_from(
                  ["t1", "2026-11-23T08:00:00", "check_in", "1001"]), max_size=8) | JSONISH},
)


@pytest.fixture(scope="module")
def control(tmp_path_factory) -> Iterator:
    tmp = tmp_path_factory.mktemp("fuzz-control")
    cfg = load(write_config(
        tmp / "gw.toml", gateway={"data_dir": str(tmp / "data"), "control_socket": str(tmp / "s")},
        mqtt={"host": "127.0.0.1", "port": 1}, terminals=[
            {"name": "t1", "driver": "virtual", "serial": "F"}]))
    daemon = Daemon(cfg)
    yield daemon.control
    daemon.store.close()


def _ask(control, line: bytes) -> dict:
    with structlog.testing.capture_logs() as logs:
        reply = control.handle_line(line)
    json.dumps(reply, default=str)
    assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool)
    if not reply["ok"]:
        assert reply.get("error"), reply
    assert not [e for e in logs if e.get("event") == "control request failed"], reply
    return reply


@SETTINGS
@given(st.binary(max_size=200))
def test_any_bytes_get_an_answer(control, raw):
    _ask(control, raw + b"\n")


@SETTINGS
@given(REQUESTS)
def test_requests_with_junk_fields_get_clear_errors(control, req):
    _ask(control, json.dumps(req, default=str).encode() + b"\n")
