"""Clock safety: nothing the gateway answers moves a push terminal's clock unless the Pi is
NTP-synced and the terminal has ``sync_clock`` on (PRODUCT.md §8;
saifulcoder/adms-server-ZKTeco#14).

The simulated terminal sets its clock like real firmware: from the ``Date`` header plus the
``TimeZone`` option, and from ``SET OPTION DateTime=``.
"""

from __future__ import annotations

from tests.pipeline.harness import wait_until


def test_unsynced_pi_never_moves_the_clock_then_synced_does(rig):
    r = rig()
    r.sync.value = False
    d = r.terminal("door", "SN0101")
    t = r.sim("SN0101", clock_offset_s=-3600.0)  # an hour behind
    wait_until(lambda: r.runners["door"].state.state == "online", 30, "online")
    wait_until(lambda: sum(a[0] == "poll" for a in t.answers) >= 5, 30, "five polls")
    hs = next(a for a in t.answers if a[0] == "handshake")[2]
    assert "TimeZone" not in hs and t.timezone_h is None
    refused = r.runners["door"].submit("sync_clock").result(10)
    assert refused["done"] is False and "NTP" in refused["refused"]
    t.punch("42")  # a real-time punch lets the gateway see the skew
    wait_until(lambda: d.status()["clock_skew_s"] is not None, 30, "skew measured")
    assert abs(d.status()["clock_skew_s"] + 3600) < 30
    wait_until(lambda: sum(a[0] == "poll" for a in t.answers) >= 8, 30, "more polls")
    assert t.clock_moves == [] and t.clock_offset_s == -3600.0

    r.sync.value = True  # NTP synced now: the next handshake carries the zone and the time
    t.reboot()
    wait_until(lambda: t.clock_moves, 30, "clock set from Date + TimeZone")
    assert t.timezone_h == 8 and abs(t.clock_offset_s) < 5
    assert t.clock_moves[0][0].startswith("Date header")


def test_sync_clock_off_never_moves_the_clock_even_when_synced(rig):
    r = rig()
    r.terminal("door", "SN0102", sync_clock=False)
    t = r.sim("SN0102", clock_offset_s=900.0)
    wait_until(lambda: r.runners["door"].state.state == "online", 30, "online")
    res = r.runners["door"].submit("sync_clock").result(10)
    assert res["done"] is False and "sync_clock is off" in res["refused"]
    wait_until(lambda: sum(a[0] == "poll" for a in t.answers) >= 5, 30, "polls")
    assert t.clock_moves == [] and t.timezone_h is None


def test_sync_clock_action_sets_the_time_through_a_command(rig):
    r = rig()
    r.terminal("door", "SN0103")
    t = r.sim("SN0103", clock_offset_s=-7200.0, obeys_date=False)  # only commands move it
    wait_until(lambda: r.runners["door"].state.state == "online", 30, "online")
    res = r.runners["door"].submit("sync_clock").result(10)
    assert res["done"] == "queued"
    wait_until(lambda: any(w == "SET OPTION DateTime" for w, _ in t.clock_moves), 30, "set")
    assert [w for w, _ in t.clock_moves] == ["SET OPTION DateTime"]
    assert abs(t.clock_offset_s) < 5
