"""LED patterns on the recording backend, stepped with a manual clock (no real sleeping).

Only GPIO hardware is faked: the RPi.GPIO stand-ins below are tiny modules on sys.path.
"""

from __future__ import annotations

import sys
import textwrap
import threading
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gateway.appliance.led_backends import NullBackend, RpiGpioBackend
from gateway.appliance.led_codes import (
    BEAT_TIMEOUT_S,
    FAULT_CODES,
    FAULT_PAUSE_S,
    FLASH_OFF_S,
    FLASH_ON_S,
    fault_pattern,
    led_test_steps,
)
from gateway.appliance.leds import (
    Leds,
    ManualClock,
    RecordingBackend,
    make_backend,
)

HB, NET, FAULT = 17, 27, 22


def make(t0: float = 100.0) -> tuple[Leds, RecordingBackend, ManualClock]:
    clock = ManualClock(t0)
    rec = RecordingBackend(clock)
    leds = Leds(rec, HB, NET, FAULT, clock=clock)
    return leds, rec, clock


def started() -> tuple[Leds, RecordingBackend, ManualClock]:
    leds, rec, clock = make()
    leds.start(run_thread=False)
    leds.run_until(clock.t + 1.0)  # past the self-test
    rec.clear()
    return leds, rec, clock


def rising_edges(rec: RecordingBackend, pin: int, since: float) -> list[float]:
    return [t for t, on in rec.changes(pin, since) if on]


def test_self_test_lights_all_three_for_one_second() -> None:
    leds, rec, _clock = make()
    leds.start(run_thread=False)
    leds.tick()
    assert rec.state == {HB: True, NET: True, FAULT: True}
    assert rec.pins == (HB, NET, FAULT)
    leds.run_until(100.999)
    assert all(rec.state.values())
    leds.run_until(101.0)
    assert rec.state == {HB: False, NET: False, FAULT: False}
    for pin in (HB, NET, FAULT):
        assert rec.changes(pin) == [(100.0, True), (101.0, False)]


def test_stop_turns_everything_off_and_is_idempotent() -> None:
    leds, rec, clock = started()
    leds.beat()
    leds.set_network("connected")
    leds.set_faults([3])
    leds.run_until(clock.t + 3.0)
    assert rec.state[NET] is True
    leds.stop()
    assert rec.state == {HB: False, NET: False, FAULT: False}
    assert rec.closed
    leds.stop()


def test_heartbeat_blinks_at_1hz_while_beats_come() -> None:
    leds, rec, clock = started()
    t0 = clock.t
    for _ in range(10):  # the health loop beats once a second
        leds.beat()
        leds.run_until(clock.t + 1.0)
    ups = rising_edges(rec, HB, t0)
    assert ups == pytest.approx([t0 + i for i in range(11)])  # run_until includes t0 + 10
    downs = [t for t, on in rec.changes(HB, t0) if not on]
    assert downs == pytest.approx([t0 + i + 0.5 for i in range(10)])


def test_heartbeat_freezes_when_beats_stop_and_resumes() -> None:
    leds, rec, clock = started()
    t0 = clock.t
    for _ in range(3):
        leds.beat()
        leds.run_until(clock.t + 1.0)
    # Hang: no beat for a long time; nothing may change after the beat timeout.
    last_beat = t0 + 2.0
    leds.run_until(clock.t + 30.0)
    late = rec.changes(HB, last_beat + BEAT_TIMEOUT_S + 1e-9)
    assert late == []
    frozen = rec.state[HB]
    # The engine schedules nothing for the frozen heartbeat: no wake-ups while hung.
    assert leds.tick() is None
    assert rec.state[HB] == frozen
    # Beats come back: the LED resumes at once with a fresh "on", then blinks again.
    resumed_at = clock.t
    leds.beat()
    leds.tick()
    assert rec.state[HB] is True
    leds.run_until(clock.t + 1.0)
    assert rec.changes(HB, resumed_at + 1e-9) == [
        (pytest.approx(resumed_at + 0.5), False),
        (pytest.approx(resumed_at + 1.0), True),
    ]


def test_heartbeat_off_before_the_first_beat() -> None:
    leds, rec, clock = started()
    leds.run_until(clock.t + 5.0)
    assert rec.changes(HB) == []
    assert rec.state[HB] is False


@pytest.mark.parametrize(
    ("mode", "period"), [("draining", 1.0), ("unreachable", 0.25)], ids=["1Hz", "4Hz"]
)
def test_network_blink_modes(mode: str, period: float) -> None:
    leds, rec, clock = started()
    t0 = clock.t
    leds.set_network(mode)
    leds.run_until(t0 + 4.0 - 0.01)
    ups = rising_edges(rec, NET, t0)
    n = round(4.0 / period)
    assert ups == pytest.approx([t0 + i * period for i in range(n)])
    assert all(not on for t, on in rec.changes(NET, t0) if t not in ups)


def test_network_connected_is_solid_and_off_is_off() -> None:
    leds, rec, clock = started()
    leds.set_network("connected")
    leds.run_until(clock.t + 10.0)
    assert rec.changes(NET) == [(pytest.approx(clock.t - 10.0), True)]
    leds.set_network("connected")  # repeated calls every tick change nothing
    leds.set_network("off")
    leds.run_until(clock.t + 1.0)
    assert rec.state[NET] is False
    with pytest.raises(ValueError, match="unknown network LED mode"):
        leds.set_network("bogus")


def test_switching_network_mode_takes_effect_at_once() -> None:
    leds, rec, clock = started()
    leds.set_network("unreachable")
    leds.run_until(clock.t + 2.1)
    leds.set_network("connected")
    t_switch = clock.t
    leds.run_until(clock.t + 5.0)
    assert rec.state[NET] is True
    assert [c for c in rec.changes(NET, t_switch + 1e-9)] == []


@pytest.mark.parametrize("code", sorted(FAULT_CODES))
def test_each_fault_code_flashes_n_times_then_pauses(code: int) -> None:
    leds, rec, clock = started()
    t0 = clock.t
    leds.set_faults([code])
    cycle = FAULT_PAUSE_S + code * (FLASH_ON_S + FLASH_OFF_S)
    assert fault_pattern(code).period == pytest.approx(cycle)
    leds.run_until(t0 + 3 * cycle - 0.01)
    ups = rising_edges(rec, FAULT, t0)
    assert len(ups) == 3 * code
    for k in range(3):  # every cycle: a dark pause, then `code` flashes
        group = ups[k * code : (k + 1) * code]
        start = t0 + k * cycle + FAULT_PAUSE_S
        assert group == pytest.approx([start + i * (FLASH_ON_S + FLASH_OFF_S) for i in range(code)])
    downs = [t for t, on in rec.changes(FAULT, t0) if not on]
    assert [d - u for u, d in zip(ups, downs, strict=True)] == pytest.approx(
        [FLASH_ON_S] * len(ups)
    )


def test_most_severe_fault_wins_and_none_turns_it_off() -> None:
    leds, rec, clock = started()
    leds.set_faults([5, 3, 6])
    assert leds.fault_code == 3
    t0 = clock.t
    cycle = FAULT_PAUSE_S + 3 * (FLASH_ON_S + FLASH_OFF_S)
    leds.run_until(t0 + cycle - 0.01)
    assert len(rising_edges(rec, FAULT, t0)) == 3
    leds.set_faults({1, 3})
    assert leds.fault_code == 1
    leds.set_faults([])
    assert leds.fault_code is None
    leds.run_until(clock.t + 10.0)
    assert rec.state[FAULT] is False
    assert leds.tick() is None  # nothing left to schedule


def test_unknown_fault_code_is_ignored_with_one_warning() -> None:
    leds, _, _ = started()
    with capture_logs() as logs:
        leds.set_faults([99, 4])
        leds.set_faults([99, 4])
    assert leds.fault_code == 4
    assert [e["event"] for e in logs] == ["unknown_fault_code"]


def test_fault_codes_table_is_complete() -> None:
    assert sorted(FAULT_CODES) == [1, 2, 3, 4, 5, 6]
    for code, fault in FAULT_CODES.items():
        assert fault.code == code and fault.meaning and fault.fix and fault.name


def test_test_sequence_shows_every_pattern_then_resumes_live_state() -> None:
    leds, rec, clock = started()
    leds.set_network("connected")
    leds.run_until(clock.t + 1.0)
    t0 = clock.t
    steps = leds.test_sequence()
    assert steps == led_test_steps()
    labels = " | ".join(s.label for s in steps)
    for word in ("self-test", "heartbeat", "solid", "slow", "fast"):
        assert word in labels
    assert [s.label.split(":")[0] for s in steps[-6:]] == [f"fault {c}" for c in range(1, 7)]
    assert leds.testing
    total = sum(s.duration for s in steps)
    leds.run_until(t0 + total - 0.01)
    # Each fault step flashed its code once: 1+2+...+6 flashes on the fault LED.
    assert len(rising_edges(rec, FAULT, t0)) == 1 + 21  # the all-on step + the codes
    assert rising_edges(rec, HB, t0)  # the heartbeat step blinked
    leds.run_until(t0 + total + 0.5)
    assert not leds.testing
    assert rec.state == {HB: False, NET: True, FAULT: False}  # live state is back


def test_run_until_needs_a_manual_clock() -> None:
    leds = Leds(RecordingBackend(), HB, NET, FAULT)
    with pytest.raises(TypeError):
        leds.run_until(1.0)


# -- backends ---------------------------------------------------------------------------------


@pytest.fixture
def fake_rpi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Put a stand-in ``RPi.GPIO`` with the given body on sys.path."""

    def install(body: str) -> None:
        pkg = tmp_path / "RPi"
        pkg.mkdir(exist_ok=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "GPIO.py").write_text(textwrap.dedent(body))
        monkeypatch.syspath_prepend(str(tmp_path))
        for name in ("RPi", "RPi.GPIO"):
            monkeypatch.delitem(sys.modules, name, raising=False)

    yield install
    for name in ("RPi", "RPi.GPIO"):
        sys.modules.pop(name, None)


def test_missing_rpi_gpio_gives_null_backend_with_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "RPi.GPIO", None)  # import fails with ImportError
    with capture_logs() as logs:
        backend = make_backend("rpi_gpio")
    assert isinstance(backend, NullBackend)
    assert backend.name == "null"
    assert [(e["event"], e["log_level"]) for e in logs] == [("leds_disabled", "warning")]
    assert "not installed" in logs[0]["reason"]


def test_rpi_gpio_runtime_error_on_import_gives_null_backend(fake_rpi) -> None:  # type: ignore[no-untyped-def]
    fake_rpi('raise RuntimeError("Cannot determine SOC peripheral base address")\n')
    with capture_logs() as logs:
        backend = make_backend("rpi_gpio")
    assert isinstance(backend, NullBackend)
    assert "SOC peripheral base address" in logs[0]["reason"]


def test_gpio_permission_error_at_setup_falls_back_to_null(fake_rpi) -> None:  # type: ignore[no-untyped-def]
    fake_rpi(
        """
        BCM, OUT, HIGH, LOW = 11, 0, 1, 0
        def setwarnings(flag): pass
        def setmode(mode): pass
        def setup(pin, mode, initial=0):
            raise PermissionError(13, "Permission denied: '/dev/gpiochip0'")
        """
    )
    backend = make_backend("rpi_gpio")
    assert isinstance(backend, RpiGpioBackend)
    clock = ManualClock()
    leds = Leds(backend, HB, NET, FAULT, clock=clock)
    with capture_logs() as logs:
        leds.start(run_thread=False)
    assert leds.backend_name == "null"
    assert logs[0]["event"] == "leds_disabled" and "Permission denied" in logs[0]["reason"]
    leds.run_until(5.0)  # keeps running on the null backend
    leds.stop()


def test_rpi_gpio_backend_drives_bcm_pins(fake_rpi) -> None:  # type: ignore[no-untyped-def]
    fake_rpi(
        """
        BCM, OUT, HIGH, LOW = 11, 0, 1, 0
        calls = []
        def setwarnings(flag): calls.append(("setwarnings", flag))
        def setmode(mode): calls.append(("setmode", mode))
        def setup(pin, mode, initial=0): calls.append(("setup", pin, mode, initial))
        def output(pin, value): calls.append(("output", pin, value))
        def cleanup(pins=None): calls.append(("cleanup", pins))
        """
    )
    backend = make_backend("rpi_gpio")
    gpio = sys.modules["RPi.GPIO"]
    clock = ManualClock()
    leds = Leds(backend, HB, NET, FAULT, clock=clock)
    leds.start(run_thread=False)
    leds.run_until(2.0)
    leds.stop()
    calls = gpio.calls
    assert ("setmode", 11) in calls
    assert [c for c in calls if c[0] == "setup"] == [("setup", p, 0, 0) for p in (HB, NET, FAULT)]
    assert [c for c in calls if c[0] == "output"][:3] == [
        ("output", p, 1) for p in (HB, NET, FAULT)
    ]
    assert calls[-1] == ("cleanup", [HB, NET, FAULT])


def test_gpio_failure_while_running_degrades_to_null() -> None:
    class Flaky(RecordingBackend):
        def set(self, pin: int, on: bool) -> None:
            raise OSError(19, "No such device")

    clock = ManualClock()
    leds = Leds(Flaky(clock), HB, NET, FAULT, clock=clock)
    with capture_logs() as logs:
        leds.start(run_thread=False)
        leds.run_until(3.0)
    assert leds.backend_name == "null"
    assert [e["event"] for e in logs] == ["leds_disabled"]


def test_null_and_unknown_backend_names() -> None:
    assert make_backend("null").name == "null"
    with pytest.raises(ValueError, match="unknown LED backend"):
        make_backend("pigpio")


def wait_for(cond, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    pause = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if cond():
            return True
        pause.wait(0.02)
    return bool(cond())


def test_real_thread_named_leds_runs_with_real_waits() -> None:
    """The threaded engine on real time: wait for conditions with generous deadlines."""
    rec = RecordingBackend()
    leds = Leds(rec, HB, NET, FAULT)
    leds.start()
    try:
        assert "leds" in [t.name for t in threading.enumerate()]
        # The self-test lights everything, then turns it off again.
        assert wait_for(lambda: rec.changes(NET) and not rec.state[NET])
        leds.set_network("unreachable")
        assert wait_for(lambda: len(rising_edges(rec, NET, 0.0)) >= 3)
        leds.beat()
        assert wait_for(lambda: rec.state[HB])
    finally:
        leds.stop()
    assert "leds" not in [t.name for t in threading.enumerate()]
    assert rec.state == {HB: False, NET: False, FAULT: False}


def test_docs_leds_md_lists_every_fault_code_and_its_meaning() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "leds.md").read_text()
    for code, fault in FAULT_CODES.items():
        assert f"| {code} | {fault.meaning} |" in text, code


_REAL_GPIO_PROBE = """
import json
from structlog.testing import capture_logs
from gateway.appliance.leds import Leds, ManualClock, make_backend
clock = ManualClock()
with capture_logs() as logs:
    leds = Leds(make_backend("rpi_gpio"), 17, 27, 22, clock=clock)
    leds.start(run_thread=False)
    leds.run_until(3.0)
    leds.stop()
print(json.dumps({"backend": leds.backend_name,
                  "warnings": [e["event"] for e in logs if e["log_level"] == "warning"]}))
"""


def test_real_gpio_library_without_gpio_hardware_degrades_to_null() -> None:
    """With the real RPi.GPIO/rpi-lgpio installed (scripts/test-pi.sh installs rpi-lgpio)
    on a machine without GPIO: a warning and the null backend, never a crash.

    In a subprocess: lgpio starts a thread of its own at import that nobody can stop.
    """
    import importlib.util
    import json
    import os
    import subprocess

    if importlib.util.find_spec("RPi") is None:
        pytest.skip("no RPi.GPIO module installed (scripts/test-pi.sh installs rpi-lgpio)")
    if Path("/dev/gpiochip0").exists() or Path("/dev/gpiomem").exists():
        pytest.skip("this machine has GPIO hardware")
    env = dict(os.environ, RPI_LGPIO_REVISION="c04170")  # rpi-lgpio: pretend to be a Pi 5
    out = subprocess.run(
        [sys.executable, "-c", _REAL_GPIO_PROBE],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"backend": "null", "warnings": ["leds_disabled"]}, out.stderr
