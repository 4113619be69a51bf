"""Issue 7: terminal faults mixed with a broker crash, through the real daemon.

The ZK simulator drops the connection mid-download, reboots, kicks the live session, and
holds a corrupt record, an impossible date and a 2000-01-01 record (dead RTC); the serial
reader sends noise and is unplugged and plugged back. Every good record arrives, the bad
ones are reported (never delivered, never blocking), no phantom punch appears.
"""

from __future__ import annotations

import random
import time

import pytest

from tests.chaos.chaoslib import Rig, health, wait_until
from tests.chaos.conftest import rounds
from tests.chaos.test_chaos_link import _crash_broker

# The long run (CHAOS_ROUNDS) outgrows the suite-wide 300 s timeout.
pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(600 + 30 * rounds(4))]


def test_terminal_faults_mixed_in_lose_nothing(tmp_path, mosquitto, subscriber, tcp_proxy,
                                              figures):
    n = rounds(1, long_cap=10)
    rng = random.Random(5)
    proxy = tcp_proxy(mosquitto.port)
    sub = subscriber(mosquitto.port, "attendance/#")
    rig = Rig(tmp_path, proxy.port, zk_records=3000, file_lines=100)
    rig.zk.inject("corrupt_record", index=100)
    rig.zk.inject("invalid_date", index=200)
    rig.zk.inject("clock_reset_record", index=300)  # kept, flagged suspect
    rig.bad_zk = 2
    rig.zk.inject("drop_mid_download", after=20000)
    gw = rig.gateway(ready=True)
    opens = 1
    try:
        rig.start_producing(0.1)
        for _ in range(n):
            time.sleep(rng.uniform(1, 3))
            rig.zk.inject("reboot", downtime_s=1.5)
            time.sleep(rng.uniform(1, 3))
            rig.zk.inject("kick_live")
            assert rig.reader is not None
            for _ in range(5):
                rig.reader.noise(32)
                time.sleep(0.05)
            # Unplug: swipes stop (a reader with no host loses them on a real Pi too) until
            # the daemon has the port open again.
            rig.stop_producing()
            rig.reader.unplug()
            time.sleep(2.0)
            rig.reader.replug()
            opens += 1
            wait_until(lambda: gw.log().count("serial port open") >= opens, 60, "reader back")
            rig.start_producing(0.1)
            time.sleep(rng.uniform(1, 2))
            _crash_broker(mosquitto, proxy, sub, rng, 1.0)
            rig.zk.inject("drop_mid_download", after=rng.randrange(1000, 60000))
            rig.zk.inject("reboot")  # the next download (after the reboot) is cut short
        rig.stop_producing()
        recovery = wait_until(lambda: rig.all_delivered(sub.punches()), 180, "all delivered")
        wait_until(lambda: health(sub).get("terminals", {}).get("lobby", {}).get("bad_records")
                   == 2, 60, "the two bad records reported in health")
        assert gw.terminate() == 0
        punches = sub.punches()
        fig = rig.figures(punches)
        assert fig.lost == 0
        y2k = [p for p in punches if p["terminal"] == "lobby" and p["time"].startswith("2000-")]
        assert y2k and all(p["clock_synced"] is False for p in y2k)
        figures("terminal faults (ZK drop/reboot/kick/corrupt, serial noise/unplug) + broker "
                "crash", rounds=n, produced=fig.produced, delivered=fig.delivered,
                lost=fig.lost, duplicates=fig.duplicates, bad_records_reported=2,
                recovery_s=round(recovery, 1))
    finally:
        rig.close()
