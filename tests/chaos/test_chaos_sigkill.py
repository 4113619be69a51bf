"""Issue 7: SIGKILL of the real daemon at random moments while it pulls three terminals and
drains to a slow link; every committed punch arrives, duplicates keep their event_id, the
database passes ``PRAGMA integrity_check`` after every kill.

CI runs a few rounds; ``CHAOS_ROUNDS=50 pytest tests/chaos -m chaos`` (``make chaos-long``)
runs the long version and prints its figures.
"""

from __future__ import annotations

import random
import time

import pytest

from tests.chaos.chaoslib import PREFIX, Rig, swipes_lost_while_open, wait_until
from tests.chaos.conftest import rounds

# The long run (CHAOS_ROUNDS) outgrows the suite-wide 300 s timeout.
pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(600 + 30 * rounds(4))]


def test_sigkill_at_random_moments_loses_nothing(tmp_path, mosquitto, subscriber, tcp_proxy,
                                                 figures):
    n = rounds(3)
    rng = random.Random(7_2026)
    proxy = tcp_proxy(mosquitto.port)
    proxy.set_latency(0.02)  # a slow link (~125 punches/s): kills land while a backlog drains
    sub = subscriber(mosquitto.port, f"{PREFIX}/punches")
    rig = Rig(tmp_path, proxy.port, zk_records=1500, file_lines=1500,
              mqtt={"max_inflight": 1, "batch_max_punches": 5})
    kills_mid_drain = 0
    windows: list[tuple[float, float]] = []
    try:
        rig.start_producing(0.1)
        for _ in range(n):
            gw = rig.gateway()
            t0 = time.monotonic()
            time.sleep(rng.uniform(0.5, 6.0))  # before, during or after the first reconcile
            gw.kill()
            windows.append((t0, time.monotonic()))
            if rig.db.exists():
                assert rig.integrity() == ["ok"]
                pending = len(rig.committed()) > len({p["event_id"] for p in sub.punches()})
                kills_mid_drain += pending
            rig.add_backlog(50, 150)  # what piles up while the gateway is down
            if rng.random() < 0.3:  # a terminal fault now and then, while the gateway is down
                rig.zk.inject("reboot")
        rig.stop_producing()
        gw = rig.gateway()
        recovery = wait_until(lambda: rig.all_delivered(sub.punches(), cards=False), 400,
                              "every committed punch delivered")
        assert gw.terminate() == 0
        punches = sub.punches()
        fig = rig.figures(punches)
        assert rig.integrity() == ["ok"]
        assert fig.by_terminal["zk"]["delivered"] == fig.by_terminal["zk"]["produced"]
        assert fig.by_terminal["file"]["delivered"] == fig.by_terminal["file"]["produced"]
        serial = fig.by_terminal["serial"]
        figures("SIGKILL during pull + drain", rounds=n, kills_mid_drain=kills_mid_drain,
                produced=fig.produced, delivered=fig.delivered,
                lost_committed=0, duplicates=fig.duplicates,
                serial_swipes_not_delivered=serial["produced"] - serial["delivered"],
                serial_lost_while_port_open=swipes_lost_while_open(rig, punches, windows),
                recovery_s=round(recovery, 1))
        assert n < 3 or kills_mid_drain >= 1, "some kills should land while a backlog drains"
    finally:
        rig.close()
