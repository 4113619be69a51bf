"""Logging through structlog: JSON lines under systemd, readable colour on a terminal.

journald keeps stdout, so the daemon never writes log files (SD-card wear). The stdlib
loggers of libraries (paho) are routed through the same processors. A redaction processor
drops any field whose name says secret, so a careless ``log.info(..., password=...)`` never
reaches the journal.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

_SECRET_WORDS = ("password", "secret", "passwd", "token", "comm_key", "credential")


def _redact(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if any(w in key.lower() for w in _SECRET_WORDS):
            event[key] = "[redacted]"
    return event


def use_json() -> bool:
    """JSON when stdout is not a terminal or when journald captures us."""
    return bool(os.environ.get("JOURNAL_STREAM")) or not sys.stdout.isatty()


def setup(level: str = "info", *, json: bool | None = None) -> None:
    """Configure structlog and the stdlib root logger once, for the daemon or a CLI command."""
    as_json = use_json() if json is None else json
    colour = not as_json and not os.environ.get("NO_COLOR")
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=colour)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    final: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if as_json:
        final.append(structlog.processors.format_exc_info)
    final.append(renderer)
    formatter = structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=final)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("paho").setLevel(logging.WARNING)
