"""The ``[remote]`` config section (issue 16): who may send which remote command.

Remote support is off unless ``[[remote.keys]]`` lists at least one key (PRODUCT.md §10)::

    [remote]
    max_validity_s = 3600   # longest expires_at - issued_at accepted
    clock_skew_s = 60       # how far in the future issued_at may be
    rate_per_min = 30       # commands handled per minute (burst = the same); more are dropped

    [[remote.keys]]
    name = "support-alice"                     # the envelope's "issuer"
    public_key = "base64 of the 32-byte Ed25519 public key"   # gatewayctl remote keygen
    verbs = ["status", "doctor", "terminals"]  # or ["*"]

Stdlib only (the loader imports it; ``gatewayctl status`` must start fast).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.config.validate import Fields
from gateway.errors import ConfigIssue
from gateway.remote.envelope import NAME, Key, public_key_bytes

#: The verbs of PRODUCT.md §10, mirroring gatewayctl.
VERBS = (
    "status",
    "doctor",
    "terminals",
    "terminal.pull",
    "terminal.probe",
    "terminal.sync_clock",
    "queue.resend",
    "queue.export",
    "punch.add",
    "log.level",
    "bundle",
)
#: Read-only verbs still served while the gateway's clock is not synchronised (expiry cannot
#: be judged then, so a replayed old envelope could run; for these that only reveals state,
#: and they are what a support engineer needs to diagnose the clock).
UNSYNCED_OK = frozenset({"status", "doctor"})
#: Verbs that change data: the envelope's args must name who approved it (in the audit).
NEEDS_APPROVER = frozenset({"punch.add", "queue.resend"})

MAX_VALIDITY_S = 3600
CLOCK_SKEW_S = 60
RATE_PER_MIN = 30


@dataclass(frozen=True)
class RemoteSection:
    keys: tuple[Key, ...] = ()
    max_validity_s: int = MAX_VALIDITY_S
    clock_skew_s: int = CLOCK_SKEW_S
    rate_per_min: int = RATE_PER_MIN

    @property
    def enabled(self) -> bool:
        return bool(self.keys)


def parse(raw: Any, issues: list[ConfigIssue]) -> RemoteSection:
    """Validate the ``[remote]`` table (``raw`` is ``{}`` when the section is absent)."""
    if not isinstance(raw, dict):
        issues.append(ConfigIssue("remote", "expected a table"))
        return RemoteSection()
    f = Fields(raw, "remote", issues)
    max_validity = f.int("max_validity_s", MAX_VALIDITY_S, min=60, max=7 * 86400)
    skew = f.int("clock_skew_s", CLOCK_SKEW_S, min=0, max=3600)
    rate = f.int("rate_per_min", RATE_PER_MIN, min=1, max=6000)
    f.ignore("keys")
    f.done()
    items = raw.get("keys", [])
    if not isinstance(items, list):
        issues.append(ConfigIssue("remote.keys", "expected an array of tables ([[remote.keys]])"))
        items = []
    keys: list[Key] = []
    for i, table in enumerate(items):
        key = _key(table, f"remote.keys[{i}]", issues, {k.name for k in keys})
        if key is not None:
            keys.append(key)
    return RemoteSection(tuple(keys), max_validity, skew, rate)


def _key(table: Any, path: str, issues: list[ConfigIssue], seen: set[str]) -> Key | None:
    if not isinstance(table, dict):
        issues.append(ConfigIssue(path, "expected a table"))
        return None
    f = Fields(table, path, issues)
    name = f.str("name")
    if name is not None and not NAME.match(name):
        f.error("name", f"expected {NAME.pattern} (it is the envelope's issuer), got {name!r}")
    if name in seen:
        f.error("name", f"duplicate key name {name!r}")
    text = f.str("public_key")
    public = None
    if text is not None:
        try:
            public = public_key_bytes(text)
        except ValueError as err:
            f.error("public_key", f"expected base64 of a 32-byte Ed25519 public key: {err}")
    verbs = table.get("verbs")
    f.ignore("verbs")
    if not isinstance(verbs, list) or not verbs or not all(isinstance(v, str) for v in verbs):
        f.error("verbs", f'expected a list of verbs or ["*"]; verbs: {", ".join(VERBS)}')
        verbs = []
    bad = [v for v in verbs if v != "*" and v not in VERBS]
    if bad:
        f.error("verbs", f"unknown verb(s) {', '.join(bad)}; expected some of {', '.join(VERBS)}")
    f.done()
    if not f.ok or name is None or public is None:
        return None
    return Key(name, public, frozenset(verbs))
