"""What the LEDs say: the fault-code table, the blink patterns and the LED test script.

Pure data and pure functions (no threads, no pins): the engine in :mod:`gateway.appliance.leds`
plays these patterns, ``gatewayctl led test`` plays the script, and docs/leds.md and
``gatewayctl status`` read the fault table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FaultCode:
    """One red-LED fault code: what it means and what a technician does about it."""

    code: int
    name: str
    meaning: str
    fix: str


#: Most severe first: the LED shows the lowest active number (PRODUCT.md §5).
FAULT_CODES: dict[int, FaultCode] = {
    f.code: f
    for f in (
        FaultCode(
            1,
            "terminal_unreachable",
            "a time clock (terminal) is unreachable",
            "check the terminal is powered and on the network (ping its IP, cable, "
            "switch port); `gatewayctl terminals` names it",
        ),
        FaultCode(
            2,
            "serial_port_missing",
            "a serial card reader's port is missing",
            "reseat the USB-RS485/RS232 adapter and check the reader's power; "
            "`gatewayctl doctor` shows the expected /dev/serial path",
        ),
        FaultCode(
            3,
            "disk_low",
            "disk space low or punch store full",
            "free space on the SD card (old logs, backups) or replace the card; "
            "`gatewayctl status` shows free space; terminals keep their logs meanwhile",
        ),
        FaultCode(
            4,
            "database_error",
            "the punch database failed (corrupt or unwritable)",
            "run `gatewayctl doctor`; a corrupt file is moved aside automatically; "
            "check power supply and SD card health, then `systemctl restart "
            "attendance-gateway`",
        ),
        FaultCode(
            5,
            "clock_unsynced",
            "the gateway's clock is not NTP-synchronised",
            "give the gateway Internet/NTP access (UDP 123) and wait a few minutes; "
            "`timedatectl` shows the sync state; punches are still stored",
        ),
        FaultCode(
            6,
            "broker_auth",
            "the MQTT broker refused the login or the TLS handshake",
            "check [mqtt] username, the password file, CA/cert files and the Pi's "
            "date; `gatewayctl doctor` shows the broker's answer",
        ),
    )
}

NETWORK_MODES: tuple[str, ...] = ("connected", "draining", "unreachable", "off")

SELF_TEST_S = 1.0
#: No beat for this long and the heartbeat freezes (the health loop must tick faster).
BEAT_TIMEOUT_S = 2.0
FLASH_ON_S = 0.2
FLASH_OFF_S = 0.4
#: Dark time before each group of flashes (plus the last FLASH_OFF_S: 2 s between groups).
FAULT_PAUSE_S = 1.6
#: Times this close to a segment's end count as past it, so float rounding at a boundary
#: never yields a near-zero wait (a spin) or a transition a hair early.
_EPS_S = 1e-6


@dataclass(frozen=True, slots=True)
class Pattern:
    """A repeating on/off sequence of ``(on, seconds)`` segments, counted from an anchor."""

    segments: tuple[tuple[bool, float], ...]

    @property
    def period(self) -> float:
        return sum(d for _, d in self.segments)

    def at(self, elapsed: float) -> tuple[bool, float | None]:
        """The state ``elapsed`` s after the anchor, and the seconds until it may change."""
        if len({on for on, _ in self.segments}) == 1:
            return self.segments[0][0], None
        e = max(elapsed, 0.0) % self.period
        end = 0.0
        for on, duration in self.segments:
            end += duration
            if e < end - _EPS_S:
                return on, end - e
        return self.segments[0][0], self.segments[0][1]  # e rounded up to the period


def blink(hz: float) -> Pattern:
    """A 50 % duty-cycle blink at ``hz``, starting with the LED on."""
    half = 0.5 / hz
    return Pattern(((True, half), (False, half)))


def fault_pattern(code: int) -> Pattern:
    """The dark pause, then ``code`` short flashes."""
    return Pattern(((False, FAULT_PAUSE_S),) + ((True, FLASH_ON_S), (False, FLASH_OFF_S)) * code)


OFF = Pattern(((False, 1.0),))
ON = Pattern(((True, 1.0),))
HEARTBEAT = blink(1.0)
NETWORK_PATTERNS: dict[str, Pattern] = {
    "connected": ON,
    "draining": blink(1.0),
    "unreachable": blink(4.0),
    "off": OFF,
}


@dataclass(frozen=True, slots=True)
class LedTestStep:
    """One step of ``gatewayctl led test``: a label and what each LED shows meanwhile."""

    label: str
    duration: float
    heartbeat: Pattern
    network: Pattern
    fault: Pattern


def led_test_steps() -> tuple[LedTestStep, ...]:
    """Every pattern once: self-test, heartbeat, each network mode, each fault code."""
    steps = [
        LedTestStep("self-test: all LEDs on", SELF_TEST_S, ON, ON, ON),
        LedTestStep("heartbeat: 1 Hz blink = daemon alive", 3.0, HEARTBEAT, OFF, OFF),
        LedTestStep("network solid = broker connected, nothing pending", 2.0, OFF, ON, OFF),
        LedTestStep(
            "network slow blink = draining a backlog", 3.0, OFF, NETWORK_PATTERNS["draining"], OFF
        ),
        LedTestStep(
            "network fast blink = broker unreachable, buffering",
            2.0,
            OFF,
            NETWORK_PATTERNS["unreachable"],
            OFF,
        ),
    ]
    for fault in FAULT_CODES.values():
        pattern = fault_pattern(fault.code)
        steps.append(
            LedTestStep(f"fault {fault.code}: {fault.meaning}", pattern.period, OFF, OFF, pattern)
        )
    return tuple(steps)
