"""The publisher: drains the store to the broker, at least once, in ``seq`` order.

One thread ("publisher") owns every paho call and every delivery decision. It fills an
in-flight window (``max_inflight``, capped by the broker's Receive Maximum) with batches of
up to ``batch_max_punches`` punches, paced by ``max_publish_rate``. A row becomes delivered
only on a PUBACK with a success reason code. On a disconnect the in-flight map is forgotten
and the rows are re-sent from SQLite after reconnecting (duplicates possible, loss not).
Draining is triggered on connect, by ``wake()`` and by a 1 s timer, never only by a new
punch (NanoMQ #2423, Vector #22946 lost backlogs that way).

The cursor (the highest seq leased on this connection) rewinds not only on reconnect: on
``wake(rewind=True)`` (``queue resend``: rows made pending again below it) and whenever
nothing is in flight and pending rows remain below it (a re-send from another process).
Issue 13: re-sent rows used to wait for the next reconnect.

Poison messages never block the queue: a batch larger than the limit is never sent, a batch
refused for good is split into single punches, and a single punch refused for good (or one
that makes the broker drop the connection twice while alone in flight) is dead-lettered.

Cloud profiles (issue 19): the topics and the login come from ``profiles``; what the broker
allows (retain, will, QoS, sizes, window) from ``capabilities``, at every connect. Without
retain, status, health and terminal states are sent unretained with every health beat.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Callable

import structlog

from gateway.config import MqttSection
from gateway.errors import StoreError
from gateway.pipeline.driver import Clock, SystemClock, TimeSync
from gateway.store.db import Store
from gateway.uplink import payloads, profiles
from gateway.uplink.batching import BatchPlanner
from gateway.uplink.capabilities import RETAIN_NOT_SUPPORTED, CapabilityModel
from gateway.uplink.link import (
    LOGIN_REFUSED,
    PERMANENT_PUBACK,
    REFUSING_DISCONNECT,
    LinkEvent,
    MqttLink,
)
from gateway.uplink.pubstate import Flight as _Flight
from gateway.uplink.pubstate import PublisherState
from gateway.uplink.remote_hook import RemoteHook

log = structlog.get_logger(__name__)

TICK_S = 1.0
REBUILD_AFTER_S = 600.0  # paho #785: a client down this long is rebuilt from scratch


class Publisher(RemoteHook, BatchPlanner):  # remote commands (issue 16); row choice
    """Drains ``store`` to the broker; every public method is thread-safe."""

    def __init__(
        self,
        cfg: MqttSection,
        gateway_id: str,
        store: Store,
        *,
        boot_id: str,
        clock: Clock | None = None,
        link_factory: Callable[..., MqttLink] = MqttLink,
        time_sync: TimeSync | None = None,
        profile: profiles.Profile | None = None,
    ) -> None:
        self.cfg = cfg
        self.gateway_id = gateway_id
        self.store = store
        self.clock = clock or SystemClock()
        self.boot_id = boot_id
        self.profile = profile or profiles.build(cfg, gateway_id)
        self.topics = self.profile.topics
        self.time_sync = time_sync  # profiles whose login signs the time wait for NTP
        self.caps = CapabilityModel(self.profile.limits, cfg, self.profile.name)
        self._link_factory = link_factory
        self.state = PublisherState(since=time.monotonic(), profile=self.profile.name)
        self.progress = time.monotonic()  # for the systemd watchdog
        self._events: queue.SimpleQueue[LinkEvent] = queue.SimpleQueue()
        self._retained: dict[str, bytes] = {}
        self._dirty: set[str] = set()
        self._inflight: dict[int, _Flight] = {}
        self._gen = 0
        self._cursor = 0  # highest seq leased on this connection
        self._rewound_from = 0  # the cursor before a rewind: below it, skip rows in flight
        self._retry: list[int] = []  # seqs to re-send before advancing the cursor
        self._solo: set[int] = set()  # seqs to send one per message (a batch was refused)
        self._suspects: dict[int, int] = {}  # seq -> times the broker dropped us with it alone
        self._window = cfg.max_inflight
        self._max_bytes = self.caps.current.max_message_bytes
        self._rate = self.caps.current.max_publish_rate
        self._overhead = payloads.batch_overhead(gateway_id)  # fixed per gateway: once
        self._tokens = 1.0
        self._last_refill = time.monotonic()
        self._stopping: float | None = None
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._link: MqttLink | None = None
        self._lock = threading.Lock()
        self._init_remote_hook()

    # -- public API ----------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def wake(self, rewind: bool = False) -> None:
        """New punches were committed: drain now rather than at the next tick. ``rewind``:
        rows below the cursor became pending again (``queue resend``): read from the start."""
        self._events.put(LinkEvent("rewind" if rewind else "wake"))

    def set_retained(self, topic: str, payload: bytes) -> None:
        """Publish ``payload`` retained on ``topic`` now, and again after every reconnect."""
        self._events.put(LinkEvent("retained", data=(topic, payload)))

    def stop(self, drain_timeout: float = 5.0) -> None:
        """Wait for in-flight acks (bounded), publish ``offline``, disconnect."""
        self._events.put(LinkEvent("stop", data=time.monotonic() + drain_timeout))
        self._thread.join(drain_timeout + 5.0)

    @property
    def connected(self) -> bool:
        return self.state.connected

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    # -- the thread ----------------------------------------------------------------------
    def _run(self) -> None:
        self._retained[self.topics.status] = self._status("online")
        try:
            while not self._clock_ok():  # a signature made with a wrong time is refused
                self._wait_and_handle()
                if self._stopping is not None:
                    self.state.detail = "stopped"
                    return
                self.progress = time.monotonic()
            self._link = self._new_link()
            while True:
                try:
                    self._wait_and_handle()
                    if self._stopping is not None and self._finish_stop():
                        return
                    if self.state.connected and self._stopping is None:
                        self._send_retained()
                        self._fill_window()
                        self._send_results()  # issue 16: behind the punches, never before
                    elif not self.state.connected and self._down_for() > REBUILD_AFTER_S:
                        self._rebuild("a long outage")
                    if self.state.connected and time.time() > (self._link.renew_at or 9e99):
                        self._rebuild("renewing the login before it expires")
                except (StoreError, sqlite3.Error) as err:
                    # The store cannot be read right now (disk error, locked, corrupt page):
                    # nothing was marked, so nothing is lost; try again in a second. The
                    # health model shows fault 4 meanwhile.
                    log.error("publisher cannot read the store; retrying", error=str(err))
                    time.sleep(1.0)
                self.progress = time.monotonic()
        except Exception:
            log.exception("publisher crashed")  # the watchdog notices: progress stops
            raise

    def _wait_and_handle(self) -> None:
        """Block until an event or the next tick, then handle everything that is queued."""
        acked: list[int] = []
        try:
            ev: LinkEvent | None = self._events.get(timeout=self._sleep_time())
        except queue.Empty:
            ev = None
        while ev is not None:
            self._on_event(ev, acked)
            try:
                ev = self._events.get_nowait()
            except queue.Empty:
                ev = None
        if acked:  # issue 18: written with the next insert, or within MARK_DELAY_S
            self.store.mark_delivered_later(acked)
            self.state.acked_punches += len(acked)
        self.store.flush_marks()  # only when due (store/marks.py)

    def _sleep_time(self) -> float:
        if self._stopping is not None:
            return 0.05
        if not self.state.connected:
            return TICK_S
        if self._tokens < 1.0:
            return max(0.001, (1.0 - self._tokens) / self._rate)
        return TICK_S

    # -- events ----------------------------------------------------------------------------
    def _on_event(self, ev: LinkEvent, acked: list[int]) -> None:
        if ev.kind == "retained":
            topic, payload = ev.data
            self._retained[topic] = payload
            self._dirty.add(topic)
            if topic == self.topics.health and not self.caps.current.retain:
                self._dirty.update(self._retained)  # no retain: liveness on every beat
        elif ev.kind == "rewind":
            self._rewind()
        elif ev.kind == "stop" and self._stopping is None:
            self._stopping = float(ev.data)
            log.info("publisher stopping", inflight=len(self._inflight))
        elif ev.kind == "ack":
            flight = self._inflight.pop(ev.mid, None) if ev.generation == self._gen else None
            if flight is not None:
                self._on_ack(flight, ev, acked)
        elif ev.kind == "connected":
            self._on_connected(ev)
        elif ev.kind == "disconnected":
            self._on_disconnected(ev)
        elif ev.kind == "refused":
            detail = f"broker refused the connection: {ev.reason}"
            if ev.code in LOGIN_REFUSED:
                self.state.refused = detail
            elif ev.code == RETAIN_NOT_SUPPORTED:
                self.caps.retain_refused(detail)
            self._set_down(detail)
        elif ev.kind == "connect_failed":
            self._set_down(f"cannot connect to {self.cfg.host}:{self.cfg.port}")

    def _on_connected(self, ev: LinkEvent) -> None:
        self.store.flush_marks(force=True)  # the cursor restarts at 0: acked rows written first
        self._gen = ev.generation
        self._inflight.clear()
        self._cursor = self._rewound_from = 0
        self._retry.clear()
        caps = self.caps.on_connack(ev.connack or {}, len(self.topics.punches))
        self._window, self._max_bytes, self._rate = (
            caps.window, caps.max_message_bytes, caps.max_publish_rate)  # fmt: skip
        self.state.capabilities = caps.as_dict()
        self.state.connected = True
        self.state.refused = caps.why.get("qos1")  # QoS 0 only: punches held, fault 6
        self.state.detail = "connected"
        self.state.since = time.monotonic()
        self._retained[self.topics.status] = self._status("online")
        self._dirty = set(self._retained)  # status first, then the rest (see _send_retained)
        self._subscribe_commands()
        log.info(
            "broker connected",
            host=self.cfg.host,
            window=self._window,
            max_message_bytes=self._max_bytes,
            retain=caps.retain,
        )

    def _on_disconnected(self, ev: LinkEvent) -> None:
        if not self.state.connected:
            return  # paho #870: on_disconnect can fire twice for one loss
        retained = any(f.topic is not None for f in self._inflight.values())
        self.state.capabilities = self.caps.on_disconnect(ev.code, ev.reason, retained)
        for flight in self._inflight.values():
            if flight.topic is not None:
                self._dirty.add(flight.topic)
            elif ev.code in REFUSING_DISCONNECT:
                # The broker dropped us with these in flight: suspects go alone next time.
                self._solo.update(flight.seqs)
                if flight.solo_suspect:
                    for seq in flight.seqs:
                        self._suspects[seq] = self._suspects.get(seq, 0) + 1
        self._inflight.clear()
        self._set_down(f"disconnected: {ev.reason}")
        poison = [s for s, n in self._suspects.items() if n >= 2]
        if poison:
            self._dead(poison, f"broker dropped the connection on it twice ({ev.reason})")

    def _set_down(self, detail: str) -> None:
        if self.state.connected or self.state.detail != detail:
            log.warning("broker link down", detail=detail)
        if self.state.connected:
            self.state.since = time.monotonic()
        self.state.connected = False
        self.state.detail = detail

    def _on_ack(self, flight: _Flight, ev: LinkEvent, acked: list[int]) -> None:
        if flight.topic is not None:
            self.caps.retained_acked()
            return
        if ev.code < 0x80:
            acked.extend(flight.seqs)
            for seq in flight.seqs:
                self._solo.discard(seq)
                self._suspects.pop(seq, None)
            return
        if ev.code in PERMANENT_PUBACK:
            if len(flight.seqs) == 1:
                self._dead(flight.seqs, f"broker refused it: {ev.reason} (0x{ev.code:02x})")
            else:  # find the one bad punch: send each alone
                self._solo.update(flight.seqs)
                self._retry.extend(flight.seqs)
        else:  # quota exceeded, server busy: transient, try again later
            self._retry.extend(flight.seqs)
            self._tokens = -self._rate  # back off about a second

    def _dead(self, seqs: list[int], reason: str) -> None:
        n = self.store.dead_letter(seqs, reason)
        for seq in seqs:
            self._solo.discard(seq)
            self._suspects.pop(seq, None)
        self.state.dead_letters += n
        log.error("punches dead-lettered", seqs=seqs[:20], count=n, reason=reason)

    # -- sending -------------------------------------------------------------------------
    def _send_retained(self) -> None:
        assert self._link is not None
        order = sorted(self._dirty, key=lambda t: t != self.topics.status)
        for topic in order:
            if len(self._inflight) >= self._window or not self.caps.current.qos1:
                return
            mid = self._link.publish(topic, self._retained[topic], retain=self.caps.current.retain)
            self._inflight[mid] = _Flight(topic=topic)
            self._dirty.discard(topic)

    def _fill_window(self) -> None:
        assert self._link is not None
        self._refill_tokens()
        if not self.caps.current.qos1:
            return  # QoS 0 only: no PUBACK, no delivery proof: hold the punches (fault 6)
        while len(self._inflight) < self._window and self._tokens >= 1.0:
            if any(f.solo_suspect for f in self._inflight.values()):
                return  # a suspect travels alone
            rows = self._next_rows()
            if not rows:
                return
            if rows[0].seq in self._solo and self._inflight:
                self._retry[:0] = [r.seq for r in rows]
                return  # wait until the window is empty, then send the suspect alone
            _, payload = payloads.batch(self.gateway_id, (r.record for r in rows), self.clock.now())
            mid = self._link.publish(self.topics.punches, payload)
            self._inflight[mid] = _Flight(
                seqs=[r.seq for r in rows], solo_suspect=rows[0].seq in self._solo
            )
            self._tokens -= 1.0
            self.state.published += 1

    def _refill_tokens(self) -> None:
        now = time.monotonic()
        rate = self._rate
        self._tokens = min(
            max(1.0, min(rate, float(self._window))),
            self._tokens + (now - self._last_refill) * rate,
        )
        self._last_refill = now

    def _result_flight(self, mid: int) -> None:
        self._inflight[mid] = _Flight()  # no seqs: a result's ack marks nothing

    # -- lifecycle helpers ---------------------------------------------------------------
    def _status(self, state: str) -> bytes:
        return payloads.status(state, self.boot_id, self.clock.now())

    def _new_link(self) -> MqttLink:
        link = self._link_factory(
            self.cfg, self.topics.status, self._status("offline"), self._events, self._gen + 1000,
            credentials=self.profile.credentials, will=self.caps.will,
        )  # fmt: skip
        self._hook_commands(link)
        link.start()
        return link

    def _clock_ok(self) -> bool:
        if not self.profile.needs_clock() or self.time_sync is None or self.time_sync.synced():
            return True
        self.state.detail = f"waiting for NTP sync: {self.profile.clock_detail} (fault 5)"
        return False

    def _down_for(self) -> float:
        return time.monotonic() - self.state.since

    def _rebuild(self, why: str) -> None:
        log.warning("rebuilding the MQTT client", why=why, down_s=self._down_for())
        assert self._link is not None
        self._link.stop()
        self.state.since = time.monotonic()
        self._link = self._new_link()

    def _finish_stop(self) -> bool:
        """True when shutdown is complete (acks drained or deadline passed)."""
        assert self._link is not None and self._stopping is not None
        punches_in_flight = any(f.topic is None for f in self._inflight.values())
        if punches_in_flight and self.state.connected and time.monotonic() < self._stopping:
            return False
        if self.state.connected and self.caps.current.qos1:
            # Graceful: the last will is not sent on a clean disconnect, so say it ourselves.
            mid = self._link.publish(
                self.topics.status, self._status("offline"), retain=self.caps.current.retain
            )
            end = min(self._stopping + 2.0, time.monotonic() + 2.0)
            while time.monotonic() < end:
                try:
                    ev = self._events.get(timeout=max(0.0, end - time.monotonic()))
                except queue.Empty:
                    break
                if ev.kind == "ack" and ev.mid == mid:
                    break
                if ev.kind == "ack" and ev.generation == self._gen and ev.code < 0x80:
                    flight = self._inflight.pop(ev.mid, None)
                    if flight is not None and flight.seqs:
                        self.store.mark_delivered(flight.seqs)
        self.store.flush_marks(force=True)
        self._link.stop()
        self.state.connected = False
        self.state.detail = "stopped"
        return True
