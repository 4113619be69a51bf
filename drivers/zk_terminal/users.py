"""The terminal's user table: slot (uid) → PIN, for logs and events that name the slot.

8-byte log records (old BW firmware) and 10/14-byte live events carry the terminal's
internal user slot, not the PIN people know (2006 manual §3: "U16 PIN, user serial number
to the machine interior"; the PIN is ``PIN2`` of the user record). A real client maps the
slot through the user table, as pyzk's ``get_attendance`` does (``tuser.uid == uid``).
Layouts (notes §1.7; pyzk master ``get_users``): 28 bytes ``<HB5s8sIxBhI`` (uid, privilege,
password, name, card, group, time zones, PIN2 u32) or 72 bytes ``<HB8s24sIx7sx24s`` (uid,
privilege, password, name, card, group, PIN as text).

The table is read with ``read_with_buffer(CMD_USERTEMP_RRQ, FCT_USER)`` (not pyzk's
``get_users``, which fails the whole read on a size it does not expect), once, and again
when the terminal's user count changes or a slot is not in it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from drivers.zk_terminal.codec import CMD_USERTEMP_RRQ, FCT_USER
from gateway.errors import DriverError

_U28 = struct.Struct("<HB5s8sIxBhI")
_U72 = struct.Struct("<HB8s24sIx7sx24s")


@dataclass
class UserTable:
    """Slot → PIN, and the user count the terminal reported when it was read."""

    pins: dict[int, str] = field(default_factory=dict)
    count: int = 0
    record_size: int = 0
    problems: list[str] = field(default_factory=list)

    def pin(self, uid: int) -> str | None:
        return self.pins.get(uid)

    @property
    def complete(self) -> bool:
        """Every user the terminal counted was read (a short read must not pass for a
        deleted user: the slot's id would change once the table reads whole)."""
        return len(self.pins) + len(self.problems) >= self.count


def parse_users(data: bytes, users_hint: int | None) -> UserTable:
    """A users dataset (``u32 total`` + records) → table; ValueError if no layout fits."""
    table = UserTable(count=users_hint or 0)
    if len(data) < 4:
        return table
    (total,) = struct.unpack_from("<I", data)
    body = data[4 : 4 + total]
    size = 0
    if users_hint and total % users_hint == 0 and total // users_hint in (28, 72):
        size = total // users_hint
    else:
        size = next((n for n in (72, 28) if body and len(body) % n == 0), 0)
    if not size:
        raise ValueError(f"user table of {len(body)} bytes fits no known layout (28/72 bytes)")
    table.record_size = size
    for off in range(0, len(body) - size + 1, size):
        raw = body[off : off + size]
        if size == 28:
            uid, *_rest, pin2 = _U28.unpack(raw)
            pin = str(pin2)
        else:
            uid, *_rest, pin_b = _U72.unpack(raw)
            pin = pin_b.split(b"\x00", 1)[0].decode("ascii", "replace")
        if uid and pin and pin != "0":
            table.pins[uid] = pin
        else:
            table.problems.append(f"user record {raw.hex()} has no slot or PIN")
    return table


def read_users(zk: Any) -> UserTable:
    """Download and parse the user table (``zk`` is a connected ``HardenedZK``)."""
    zk.read_sizes()
    data, _size = zk.read_with_buffer(CMD_USERTEMP_RRQ, FCT_USER)
    return parse_users(bytes(data), int(zk.users))


class SlotMapper:
    """Slot → PIN with the table read lazily: once, again when the terminal's user count
    changed, and at most once per ``new_pass`` when a slot is missing (a user enrolled
    since the last read)."""

    def __init__(self) -> None:
        self.table: UserTable | None = None
        self.stale = True
        self.reads = 0
        self._retried = False

    def note_count(self, users: int) -> None:
        if self.table is not None and users != self.table.count:
            self.stale = True

    def new_pass(self) -> None:
        self._retried = False

    def resolve(self, zk: Any, uid: int, terminal: str) -> str | None:
        """``pin``, with a failed table read as the driver's fault 1: no PIN, no punch (an
        id made of the slot would change once the table reads whole)."""
        try:
            return self.pin(zk, uid)
        except Exception as err:
            raise DriverError(
                f"{terminal}: cannot read the terminal's user table, needed to turn the user "
                f"slots of its 8-byte records into PINs: {type(err).__name__}: {err}",
                fault=1,
            ) from err

    def pin(self, zk: Any, uid: int) -> str | None:
        if self.table is None or self.stale:
            self._load(zk)
        assert self.table is not None
        found = self.table.pin(uid)
        if found is None and not self._retried:
            self._retried = True
            self._load(zk)
            found = self.table.pin(uid)
        if found is None and not self.table.complete:
            self.stale = True
            raise ValueError(
                f"user table read short ({len(self.table.pins)} of {self.table.count} users)"
            )
        return found

    def _load(self, zk: Any) -> None:
        self.table = read_users(zk)
        self.stale = False
        self.reads += 1
