"""The remote commands' audit trail and replay cache, in the gateway's store (issue 16).

``remote_audit`` (schema v4) gets one row per command received, accepted or refused, and
is never pruned (PRODUCT.md §10: the audit survives pruning). ``remote_ids`` is the replay
cache: an accepted id is written *before* its command runs, in the same transaction as its
audit row, so after a kill -9 the id is still known and the command is never run twice.
Entries are deleted once their envelope has expired (an expired envelope is refused
anyway). Writes go through the store's own transaction helper, so they share its lock and
its ``synchronous=FULL`` durability with the punches.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.store.db import Store, iso_utc

MAX_AUDIT_TEXT = 4096  # args/result copies in the audit are truncated: it is a log, not a store
#: Refused/dropped/duplicate rows kept (the newest). Anyone who may publish on cmd/req can
#: make refusals, so they are capped (~25 MB); accepted commands need a key and are kept.
REFUSALS_KEPT = 50_000
NOT_RUN = "('refused', 'dropped', 'duplicate')"
COLUMNS = (
    "id",
    "received_at",
    "cmd_id",
    "issuer",
    "verb",
    "approver",
    "outcome",
    "kind",
    "detail",
    "args",
    "result",
    "finished_at",
)


def _clip(obj: Any, limit: int = MAX_AUDIT_TEXT) -> str | None:
    if obj is None:
        return None
    text = obj if isinstance(obj, str) else json.dumps(obj, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 20] + f"…[{len(text)} chars]"


@dataclass(frozen=True)
class Seen:
    """What the replay cache knows of an id: ``duplicate`` (same envelope, result stored),
    ``running`` (same envelope, no result: it ran when the gateway died, or runs now) or
    ``replayed`` (another envelope with this id)."""

    state: str
    result: str | None = None


class Ledger:
    """Audit and replay cache over ``store``; every method is one short transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def refused(
        self,
        at: datetime,
        *,
        kind: str,
        detail: str,
        cmd_id: str | None = None,
        issuer: str | None = None,
        verb: str | None = None,
        args: Any = None,
        outcome: str = "refused",
    ) -> int:
        """Audit a command that was not run (refused, duplicate, dropped)."""
        with self.store._write() as conn:  # the store's lock + BEGIN IMMEDIATE
            cur = conn.execute(
                "INSERT INTO remote_audit(received_at, cmd_id, issuer, verb, approver, args,"
                " outcome, kind, detail, finished_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    iso_utc(at),
                    cmd_id,
                    issuer,
                    verb,
                    _approver(args),
                    _clip(args),
                    outcome,
                    kind,
                    _clip(detail, 1000),
                    iso_utc(at),
                ),
            )
            return int(cur.lastrowid or 0)

    def begin(
        self,
        at: datetime,
        *,
        cmd_id: str,
        sig: str,
        keep_until: datetime,
        issuer: str,
        verb: str,
        args: Any,
    ) -> tuple[int, Seen | None]:
        """Claim ``cmd_id`` for running: ``(audit_id, None)``, or ``(0, Seen)`` when the id is
        known already (nothing is written then; the caller audits the refusal)."""
        with self.store._write() as conn:
            row = conn.execute(
                "SELECT sig, result FROM remote_ids WHERE id=?", (cmd_id,)
            ).fetchone()
            if row is not None:
                if row[0] != sig:
                    return 0, Seen("replayed")
                return 0, Seen("duplicate" if row[1] is not None else "running", row[1])
            cur = conn.execute(
                "INSERT INTO remote_audit(received_at, cmd_id, issuer, verb, approver, args,"
                " outcome) VALUES (?,?,?,?,?,?, 'running')",
                (iso_utc(at), cmd_id, issuer, verb, _approver(args), _clip(args)),
            )
            audit_id = int(cur.lastrowid or 0)
            conn.execute(
                "INSERT INTO remote_ids(id, sig, keep_until, audit_id) VALUES (?,?,?,?)",
                (cmd_id, sig, iso_utc(keep_until), audit_id),
            )
            return audit_id, None

    def finish(
        self,
        audit_id: int,
        cmd_id: str,
        at: datetime,
        *,
        ok: bool,
        kind: str | None,
        detail: str | None,
        result_json: str,
    ) -> None:
        """Record the result: the audit row's outcome, and the full result for repeats."""
        with self.store._write() as conn:
            conn.execute(
                "UPDATE remote_audit SET outcome=?, kind=?, detail=?, result=?, finished_at=?"
                " WHERE id=?",
                (
                    "done" if ok else "failed",
                    kind,
                    _clip(detail, 1000),
                    _clip(result_json),
                    iso_utc(at),
                    audit_id,
                ),
            )
            conn.execute("UPDATE remote_ids SET result=? WHERE id=?", (result_json, cmd_id))

    def forget_expired(self, now: datetime, refusals_kept: int = REFUSALS_KEPT) -> int:
        """Drop replay-cache entries whose envelopes expired (their audit rows stay), and
        refusals beyond the newest ``refusals_kept`` (accepted commands are never dropped)."""
        with self.store._write() as conn:
            cur = conn.execute("DELETE FROM remote_ids WHERE keep_until < ?", (iso_utc(now),))
            conn.execute(
                f"DELETE FROM remote_audit WHERE outcome IN {NOT_RUN} AND id <= ("  # nosec B608 # noqa: S608 - a constant
                f"SELECT id FROM remote_audit WHERE outcome IN {NOT_RUN}"
                " ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (refusals_kept,),
            )
            return cur.rowcount


def _approver(args: Any) -> str | None:
    value = args.get("approver") if isinstance(args, dict) else None
    return value[:200] if isinstance(value, str) else None


def recent(store: Store, limit: int = 200) -> list[dict[str, Any]]:
    """The newest audit rows, newest first (``gatewayctl remote audit``, the bundle)."""
    rows = store.query(
        f"SELECT {', '.join(COLUMNS)} FROM remote_audit ORDER BY id DESC LIMIT ?",  # nosec B608 # noqa: S608 - fixed names
        (max(1, limit),),
    )
    return [dict(zip(COLUMNS, r, strict=True)) for r in rows]
