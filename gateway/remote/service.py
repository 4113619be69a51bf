"""The ``remote`` thread (issue 16): takes command envelopes off the MQTT inbox, refuses or
runs them, audits every one, and hands the results to the publisher.

Order of judgement (each refusal has a ``kind``, docs/remote.md): rate and size → JSON shape
(``malformed``, ``unsigned``) → key and signature (``unknown_key``, ``bad_signature``) →
verb (``unknown_verb``, ``forbidden_verb``, ``approver_required``) → time (``clock_unsynced``,
``expired``, ``not_yet_valid``, ``validity_too_long``) → id (``replayed``, ``in_progress``,
or a ``duplicate`` that gets the stored result back) → run. A refused command changes
nothing but the audit.

Punches first: the inbox is bounded and the thread handles at most ``rate_per_min``
commands a minute; whatever is over is dropped on the spot, counted, and audited as one
``dropped`` row per burst (not one row each: a flood must not turn into a flood of fsyncs).
Results queue behind the punches in the publisher (``gateway.uplink.remote_hook``).
"""

from __future__ import annotations

import base64
import json
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from gateway.errors import StoreError
from gateway.ops.control_client import RequestError
from gateway.remote import envelope, results
from gateway.remote.envelope import Envelope, Key, Refusal
from gateway.remote.ledger import Ledger, Seen
from gateway.remote.settings import NEEDS_APPROVER, UNSYNCED_OK, VERBS, RemoteSection
from gateway.uplink.remote_hook import Inbound

if TYPE_CHECKING:
    from gateway.appliance.commands import Handler
    from gateway.pipeline.driver import Clock, TimeSync
    from gateway.store.db import Store
    from gateway.uplink.publisher import Publisher

log = structlog.get_logger(__name__)

INBOX_MAX = 64
FLUSH_DROPS_S = 10.0  # how often a burst of dropped commands becomes one audit row
FORGET_EVERY_S = 3600.0
REMOTE_ACTION_TIMEOUT_S = 60  # terminal.* default: the thread serves one command at a time
#: verb -> the handler's name in gateway.appliance.commands (one implementation, two doors)
HANDLERS = {
    "status": "status",
    "doctor": "doctor",
    "terminals": "terminals",
    "terminal.pull": "pull",
    "terminal.probe": "probe",
    "terminal.sync_clock": "sync_clock",
    "queue.resend": "resend",
    "queue.export": "export",
    "punch.add": "punch",
    "log.level": "log_level",
    "bundle": "bundle",
}
assert set(HANDLERS) == set(VERBS)
PUNCH_FIELDS = ("terminal", "user_id", "time", "state", "reason")


@dataclass(frozen=True)
class Who:
    """What the audit says about a command: its id, key (issuer), verb and args."""

    cmd_id: str | None = None
    issuer: str | None = None
    verb: str | None = None
    args: Any = None


class RemoteService:
    """Verifies and runs remote commands for one gateway; ``start``/``stop``."""

    def __init__(
        self,
        cfg: RemoteSection,
        *,
        gateway_id: str,
        topic_base: str,
        handlers: dict[str, Handler],
        store: Store,
        publisher: Publisher,
        clock: Clock,
        time_sync: TimeSync | None,
    ) -> None:
        self.cfg = cfg
        self.gateway_id = gateway_id
        self.req_topic = f"{topic_base}/cmd/req"
        self.res_topic = f"{topic_base}/cmd/res"
        self.handlers = handlers
        self.ledger = Ledger(store)
        self.publisher = publisher
        self.clock = clock
        self.time_sync = time_sync
        self.counts: Counter[str] = Counter()  # outcome or refusal kind -> how many
        self._inbox: queue.Queue[Inbound] = queue.Queue(INBOX_MAX)
        self._overflow = 0  # inbox full (paho's thread counts; the remote thread audits)
        self._overflow_lock = threading.Lock()
        self._limited = 0  # over rate_per_min
        self._tokens = float(cfg.rate_per_min)
        self._refill_at = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="remote", daemon=True)
        publisher.attach_commands(self.req_topic, self.inbox)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()
        log.info("remote commands on", topic=self.req_topic, keys=[k.name for k in self.cfg.keys])

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def inbox(self, msg: Inbound) -> None:
        """paho's thread: queue it or count it, never block."""
        if len(msg.payload) > envelope.MAX_BYTES:  # refused unread: keep only what says so
            msg = Inbound(msg.payload[: envelope.MAX_BYTES + 1])
        try:
            self._inbox.put_nowait(msg)
        except queue.Full:
            with self._overflow_lock:
                self._overflow += 1

    # -- the thread --------------------------------------------------------------------------
    def _run(self) -> None:
        next_forget = time.monotonic()
        last_flush = time.monotonic()
        while not self._stop.is_set():
            try:
                msg: Inbound | None = self._inbox.get(timeout=1.0)
            except queue.Empty:
                msg = None
            try:
                if msg is not None:
                    self._take(msg)
                if time.monotonic() - last_flush >= FLUSH_DROPS_S or msg is None:
                    self._flush_drops()
                    last_flush = time.monotonic()
                if time.monotonic() >= next_forget:
                    self.ledger.forget_expired(self.clock.now())
                    next_forget = time.monotonic() + FORGET_EVERY_S
            except Exception:  # one bad command must not end remote support
                log.exception("remote command handling failed")
        self._flush_drops()

    def _take(self, msg: Inbound) -> None:
        now = time.monotonic()
        rate = self.cfg.rate_per_min
        self._tokens = min(float(rate), self._tokens + (now - self._refill_at) * rate / 60.0)
        self._refill_at = now
        if self._tokens < 1.0:
            self._limited += 1
            return
        self._tokens -= 1.0
        self.handle(msg)

    def _flush_drops(self) -> None:
        with self._overflow_lock:
            over, self._overflow = self._overflow, 0
        limited, self._limited = self._limited, 0
        for kind, n in (("queue_full", over), ("rate_limited", limited)):
            if not n:
                continue
            self.counts[kind] += n
            detail = f"{n} command(s) dropped unread ({kind}; limit {self.cfg.rate_per_min}/min)"
            log.warning("remote commands dropped", count=n, why=kind)
            self._audit_refusal(kind, detail, outcome="dropped")

    # -- one command -------------------------------------------------------------------------
    def handle(self, msg: Inbound) -> None:
        """Judge one message, run it when it passes, audit it, queue the result."""
        now = self.clock.now()
        env: Envelope | None = None
        try:
            env = envelope.parse(msg.payload)
            key = envelope.verify(env, self.cfg.keys)
            self._judge(env, key, now)
        except Refusal as r:
            h = envelope.hints(msg.payload) if env is None else env
            verified = env is not None and r.kind not in ("unknown_key", "bad_signature")
            who = Who(h.id, h.issuer, h.verb, env.args if env else None)
            self._refuse(msg if verified else None, r, now, who)
            return
        self._run_verified(msg, env, key, now)

    def _judge(self, env: Envelope, key: Key, now: datetime) -> None:
        if env.verb not in HANDLERS:
            raise Refusal("unknown_verb", f"unknown verb {env.verb!r}; verbs: {', '.join(VERBS)}")
        if not key.allows(env.verb):
            raise Refusal("forbidden_verb", f"key {key.name!r} may not use {env.verb!r}")
        if env.verb in NEEDS_APPROVER:
            approver = env.args.get("approver")
            if not isinstance(approver, str) or not approver.strip() or len(approver) > 200:
                raise Refusal(
                    "approver_required",
                    f"{env.verb} changes data: args.approver must name who approved it",
                )
        validity = (env.expires_at - env.issued_at).total_seconds()
        if validity > self.cfg.max_validity_s:
            raise Refusal(
                "validity_too_long",
                f"valid for {validity:.0f} s; at most {self.cfg.max_validity_s} s accepted",
            )
        if not self._synced():
            if env.verb not in UNSYNCED_OK:
                raise Refusal(
                    "clock_unsynced",
                    "the gateway's clock is not synchronised, so expiry cannot be judged; "
                    f"only {', '.join(sorted(UNSYNCED_OK))} are served until it is",
                )
            return
        if now >= env.expires_at:
            raise Refusal("expired", f"expired at {envelope.iso(env.expires_at)}")
        if env.issued_at > now + timedelta(seconds=self.cfg.clock_skew_s):
            raise Refusal("not_yet_valid", f"issued in the future ({envelope.iso(env.issued_at)})")

    def _synced(self) -> bool:
        try:
            return self.time_sync is None or bool(self.time_sync.synced())
        except Exception:  # an unreadable sync state is an unsynced clock
            return False

    def _run_verified(self, msg: Inbound, env: Envelope, key: Key, now: datetime) -> None:
        who = Who(env.id, key.name, env.verb, env.args)
        sig = base64.b64encode(env.sig).decode()
        keep = max(env.expires_at, now + timedelta(seconds=self.cfg.max_validity_s))
        keep += timedelta(seconds=self.cfg.clock_skew_s)
        try:
            audit_id, seen = self.ledger.begin(
                now,
                cmd_id=env.id,
                sig=sig,
                keep_until=keep,
                issuer=key.name,
                verb=env.verb,
                args=env.args,
            )
        except StoreError as err:  # without the replay cache nothing may run
            r = Refusal("store_error", f"cannot record the command: {err}")
            self._refuse(msg, r, now, who, audit=False)
            return
        if seen is not None:
            self._repeat(msg, who, now, seen)
            return
        try:
            result = self._execute(env, key)
            reply = results.success(self.gateway_id, env.id, env.verb, result, self.clock.now())
        except RequestError as err:
            reply = results.failure(
                self.gateway_id, env.id, env.verb, (err.kind, str(err)), self.clock.now()
            )
        except Exception as err:  # a handler bug: a clear failure, not a dead thread
            log.exception("remote command failed", verb=env.verb, id=env.id)
            reply = results.failure(
                self.gateway_id,
                env.id,
                env.verb,
                ("failed", f"{type(err).__name__}: {err}"),
                self.clock.now(),
            )
        body = results.dumps(reply).decode()
        error = reply.get("error") or {}
        self.counts["done" if reply["ok"] else "failed"] += 1
        try:
            self.ledger.finish(
                audit_id,
                env.id,
                self.clock.now(),
                ok=bool(reply["ok"]),
                kind=error.get("kind"),
                detail=error.get("message"),
                result_json=body,
            )
        except StoreError as err:
            log.error("remote result not recorded", id=env.id, error=str(err))
        log.info("remote command", id=env.id, verb=env.verb, issuer=key.name, ok=reply["ok"])
        self._send(msg, reply, verified=True)

    def _execute(self, env: Envelope, key: Key) -> Any:
        params = {k: v for k, v in env.args.items() if k != "approver"}
        if env.verb.startswith("terminal."):
            params.setdefault("timeout_s", REMOTE_ACTION_TIMEOUT_S)
        if env.verb == "punch.add":
            fields = {k: params.get(k) for k in PUNCH_FIELDS}
            fields["entered_by"] = f"remote:{key.name}, approved by {env.args['approver']}"
            params = {"punch": fields}
        return self.handlers[HANDLERS[env.verb]](params)

    def _repeat(self, msg: Inbound, who: Who, now: datetime, seen: Seen) -> None:
        if seen.state == "duplicate" and seen.result is not None:
            self.counts["duplicate"] += 1
            note = "repeated id: the stored result was sent again"
            self._audit_refusal("duplicate", note, who, outcome="duplicate")
            self._send(msg, {**json.loads(seen.result), "duplicate": True}, verified=True)
            return
        if seen.state == "running":
            r = Refusal(
                "in_progress",
                "this id was accepted before and has no result (it runs now, or ran when the "
                "gateway stopped): it is not run twice",
            )
        else:
            r = Refusal("replayed", f"id {who.cmd_id!r} was already used by another command")
        self._refuse(msg, r, now, who)

    def _refuse(
        self, msg: Inbound | None, r: Refusal, now: datetime, who: Who, *, audit: bool = True
    ) -> None:
        """``msg`` is None for an unverified envelope: its result goes only to the fixed
        result topic, never to a Response Topic a stranger chose."""
        self.counts[r.kind] += 1
        log.warning(
            "remote command refused", kind=r.kind, id=who.cmd_id, issuer=who.issuer, verb=who.verb
        )
        if audit:
            self._audit_refusal(r.kind, r.message, who)
        reply = results.failure(self.gateway_id, who.cmd_id, who.verb, (r.kind, r.message), now)
        self._send(msg, reply, verified=msg is not None)

    def _audit_refusal(
        self, kind: str, detail: str, who: Who | None = None, *, outcome: str = "refused"
    ) -> None:
        w = who or Who()
        try:
            self.ledger.refused(
                self.clock.now(),
                kind=kind,
                detail=detail,
                cmd_id=w.cmd_id,
                issuer=w.issuer,
                verb=w.verb,
                args=w.args,
                outcome=outcome,
            )
        except StoreError as err:  # disk full: the punches matter more than this row
            log.error("remote audit row lost", kind=kind, id=w.cmd_id, error=str(err))

    def _send(self, msg: Inbound | None, reply: dict[str, Any], *, verified: bool) -> None:
        limit = self.publisher.result_limit
        parts = results.messages(reply, limit)
        targets = [self.res_topic]
        if verified and msg is not None and _usable(msg.response_topic, self.res_topic):
            targets.append(str(msg.response_topic))
        corr = msg.correlation if (verified and msg is not None) else None
        for topic in targets:
            for part in parts:
                if not self.publisher.send_result(topic, part, corr):
                    self.counts["result_dropped"] += 1
                    log.warning("remote result dropped (queue full)", id=reply.get("id"))
                    return


def _usable(topic: str | None, fixed: str) -> bool:
    return (
        topic is not None
        and topic != fixed
        and 0 < len(topic) <= 256
        and not set(topic) & {"+", "#", "\0"}
    )
