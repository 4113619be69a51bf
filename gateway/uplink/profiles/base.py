"""What a cloud profile is: its limits, its topic map, its credentials (PRODUCT.md §9).

A profile never changes a payload (§4) and never weakens "delivered only on a successful
PUBACK": it only says where each message goes, how the gateway logs in, and which broker
features the platform refuses. What the broker itself announces in CONNACK is merged on top
at every connect (``gateway.uplink.capabilities``).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from gateway.config.validate import Fields


class TopicMap(Protocol):
    """The four topics of PRODUCT.md §4 for one gateway (see ``payloads.Topics``)."""

    @property
    def punches(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def health(self) -> str: ...

    def terminal_status(self, name: str) -> str: ...

    @property
    def command_base(self) -> str | None:
        """Where remote commands live (``.../req``, ``.../res``; issue 16), or None when the
        platform gives a device no topic it may subscribe to freely (Azure IoT Hub)."""
        ...


@dataclass(frozen=True)
class TemplateTopics:
    """Topics from templates with ``{kind}`` and ``{terminal}`` (terminal URL-quoted when
    ``quote_terminal``, for Azure's property bag)."""

    template: str
    terminal_template: str
    quote_terminal: bool = False
    commands: bool = True  # False: no free topic to subscribe to (see TopicMap.command_base)

    @property
    def punches(self) -> str:
        return self.template.format(kind="punches")

    @property
    def status(self) -> str:
        return self.template.format(kind="status")

    @property
    def health(self) -> str:
        return self.template.format(kind="health")

    @property
    def command_base(self) -> str | None:
        return self.template.format(kind="cmd") if self.commands else None

    def terminal_status(self, name: str) -> str:
        return self.terminal_template.format(
            terminal=quote(name, safe="") if self.quote_terminal else name
        )


@dataclass(frozen=True)
class Limits:
    """What the platform refuses or caps, per its documentation (docs/cloud.md cites it)."""

    retain: bool = True  # retained messages accepted
    will: bool = True  # a last will accepted
    protocols: tuple[str, ...] = ("5", "3.1.1")
    max_message_bytes: int | None = None
    max_publish_rate: float | None = None  # messages/s per connection
    keepalive_s: tuple[int, int] | None = None  # allowed (min, max)
    one_connection: bool = False  # a second login with the same identity kicks the first


@dataclass(frozen=True)
class Credentials:
    """One login: computed per connect because some depend on the time."""

    client_id: str
    username: str | None
    password: str | None = field(default=None, repr=False)  # never printed
    expires_at: float | None = None  # epoch seconds; the link renews before this


@dataclass(frozen=True)
class ProfileOptions:
    """The ``[mqtt.<profile>]`` table, validated; the secret is read from its file."""

    values: dict[str, Any] = field(default_factory=dict)
    secret: str | None = field(default=None, repr=False)  # never printed
    key_file: str | None = None


def read_secret(f: Fields, key: str, check_files: bool) -> tuple[str | None, str | None]:
    """The secret in file ``f[key]`` (stripped); refused when world-readable, like
    ``password_file``. Returns ``(secret, path)``."""
    path = f.str(key, None)
    if path is None or not check_files:
        return None, path
    try:
        if os.stat(path).st_mode & stat.S_IROTH:
            f.error(key, f"{path} is world-readable: run chmod 0640 {path}")
        with open(path, encoding="utf-8") as fh:
            secret = fh.read().strip()
    except OSError as err:
        f.error(key, f"cannot read {path}: {err.strerror or err}")
        return None, path
    if not secret:
        f.error(key, f"{path} is empty")
    return secret or None, path
