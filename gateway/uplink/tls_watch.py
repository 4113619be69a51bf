"""Classify TLS failures on the broker link as fault 6 ("broker refused login or TLS").

paho reports a failed TLS handshake only as ``on_connect_fail`` with no reason, so a wrong CA,
an expired or mismatched broker certificate, or a client certificate the broker rejects
looked like any unreachable broker (issue 7). ``TlsWatch`` gives the publisher's TLS context
an ``SSLSocket`` subclass (``SSLContext.sslsocket_class``) whose ``do_handshake`` records the
outcome: the handshake paho runs itself, so no extra connection or probe is needed.

Only handshake *verdicts* count (``SSLCertVerificationError`` and TLS alerts); a reset, a
timeout or an EOF during the handshake is a network problem, not fault 6. A later successful
handshake clears the fault. Verification itself is never switched off (``make_tls_context``).
"""

from __future__ import annotations

import queue
import ssl
import threading
import time
from typing import Any

import structlog

from gateway.config import MqttSection
from gateway.uplink.link import LinkEvent, MqttLink, make_tls_context

log = structlog.get_logger(__name__)

_NETWORK_ERRORS = (
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
    ssl.SSLSyscallError,
    ssl.SSLWantReadError,
    ssl.SSLWantWriteError,
)


def describe(err: ssl.SSLError) -> str | None:
    """Fault-6 text for a TLS verdict, ``None`` for a network-level failure."""
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"TLS: the broker's certificate is not trusted: {err.verify_message}"
    if isinstance(err, _NETWORK_ERRORS):
        return None
    return f"TLS handshake refused: {err.reason or err}"


class TlsWatch:
    """The outcome of the last TLS handshake with the broker (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failure: str | None = None
        self.failures = 0
        self.handshakes = 0
        self.first_failure_at: float | None = None  # monotonic, for tests and figures

    def fault(self) -> str | None:
        """Fault-6 text while the last handshake was refused (for ``HealthModel``)."""
        with self._lock:
            return self._failure

    def failed(self, err: ssl.SSLError) -> None:
        text = describe(err)
        if text is None:
            return
        with self._lock:
            self.failures += 1
            if self._failure != text:
                log.error("broker TLS refused", detail=text)
            if self.first_failure_at is None:
                self.first_failure_at = time.monotonic()
            self._failure = text

    def succeeded(self) -> None:
        with self._lock:
            self.handshakes += 1
            if self._failure is not None:
                log.info("broker TLS handshake succeeded again")
            self._failure = None

    def context(self, cfg: MqttSection) -> ssl.SSLContext:
        """``make_tls_context(cfg)`` whose sockets report their handshakes to this watch."""
        ctx = make_tls_context(cfg)
        watch = self

        class _WatchedSocket(ssl.SSLSocket):
            def do_handshake(self, block: bool = False) -> None:
                try:
                    super().do_handshake(block)
                except ssl.SSLError as err:
                    watch.failed(err)
                    raise
                watch.succeeded()

        ctx.sslsocket_class = _WatchedSocket
        return ctx

    def link_factory(
        self,
        cfg: MqttSection,
        will_topic: str,
        will_payload: bytes,
        events: queue.SimpleQueue[LinkEvent],
        generation: int = 0,
        **kwargs: Any,
    ) -> MqttLink:
        """An ``MqttLink`` (the publisher's ``link_factory``) with a watched TLS context;
        ``kwargs`` (credentials, will) go to the link."""
        ctx = self.context(cfg) if cfg.tls else None
        return MqttLink(cfg, will_topic, will_payload, events, generation, tls_context=ctx,
                        **kwargs)  # fmt: skip
