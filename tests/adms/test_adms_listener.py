"""The listener with a real runner and store, driven by simulated terminals over real HTTP."""

from __future__ import annotations

from datetime import datetime

from tests.pipeline.harness import wait_until


def test_upload_is_committed_before_ok_and_reuploads_collapse(rig):
    r = rig()
    r.terminal("door", "SN0001")
    t = r.sim("SN0001")
    t.fill(1200, datetime(2026, 11, 20, 8, 0))
    wait_until(lambda: t.pending() == 0, 60, "all 1200 acknowledged")
    assert len(set(r.stored("door"))) == 1200
    wait_until(lambda: r.runners["door"].state.state == "online", 30, "online")
    t.stamp_reset()  # firmware reset its stamp: everything goes again
    wait_until(lambda: t.pending() == 0 and t.uploads_ok >= 6, 60, "re-upload acknowledged")
    assert len(r.stored("door")) == 1200
