"""The publisher's plain records: what one in-flight message carries, and the state that
``status``, ``doctor`` and the LEDs read (moved out of ``publisher`` to keep it short)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Flight:
    seqs: list[int] = field(default_factory=list)
    topic: str | None = None  # set for retained status/health messages
    solo_suspect: bool = False


@dataclass
class PublisherState:
    connected: bool = False
    since: float = 0.0
    detail: str = "starting"
    refused: str | None = None  # fault 6 text while the broker refuses login/TLS
    dead_letters: int = 0
    published: int = 0
    acked_punches: int = 0
    profile: str = "generic"  # issue 19: [mqtt] profile
    capabilities: dict[str, Any] = field(default_factory=dict)  # what the broker allows
