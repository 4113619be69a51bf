"""The one ``[adms]`` HTTP listener per daemon: the push terminals' "server address".

Why the stdlib ``http.server.ThreadingHTTPServer`` (issue 15, docs/design.md): no new
dependency on the Pi, the threads model of the rest of the gateway, and every bound the
contract asks for is a few lines on top of it: the total request head (16 KiB) and body
(``max_body_bytes``, 413 before reading it), a deadline for the whole request
(``request_timeout_s``: a slowloris client is cut off however slowly it trickles), a cap on
connections in total and per source address (over it, the connection is closed at once),
one request per connection (``Connection: close``), and 4xx for anything malformed. A
handler never raises into the server: the listener never stops.

Clock safety (PRODUCT.md §8, saifulcoder/adms-server-ZKTeco#14): terminals set their clock
from the HTTP ``Date`` header and the ``TimeZone`` option, so neither is sent unless that
terminal has ``sync_clock`` on and the Pi is NTP-synced.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog

from drivers.adms import protocol as p
from drivers.adms.hub import Batch, Channel, Hub
from drivers.adms.options import ListenerOptions

log = structlog.get_logger(__name__)

MAX_HEAD = 16 * 1024
BODY_BUDGET_BODIES = 4  # bodies of max_body_bytes held at once, across all connections
IDLE_S = 10.0  # one socket read may wait this long (the request deadline bounds the total)
# Some firmware (built against eTimeTrackLite, an ASP.NET server) add ".aspx" to every path:
# a field log of a ZAM180-NF50VA Ver3.4.10 unit shows /iclock/cdata.aspx, getrequest.aspx,
# devicecmd.aspx and fdata.aspx; both forms are served.
PATHS = {"/iclock/cdata", "/iclock/getrequest", "/iclock/devicecmd", "/iclock/ping",
         "/iclock/registry", "/iclock/push", "/iclock/querydata", "/iclock/fdata"}  # fmt: skip


class _TooLarge(Exception):
    pass


class _Reader:
    """The request's ``rfile``, with a byte budget for the head and a deadline for it all."""

    def __init__(self, raw: Any, sock: socket.socket, deadline: float) -> None:
        self.raw, self.sock, self.deadline = raw, sock, deadline
        self.head_left = MAX_HEAD

    def _arm(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request deadline passed")
        self.sock.settimeout(min(left, IDLE_S))

    def readline(self, limit: int = -1) -> bytes:
        self._arm()
        line: bytes = self.raw.readline(min(limit, self.head_left + 1) if limit > 0 else
                                        self.head_left + 1)  # fmt: skip
        self.head_left -= len(line)
        if self.head_left < 0:
            raise http.client.LineTooLong("request head over 16 KiB")
        return line

    def read(self, n: int) -> bytes:
        self._arm()
        return bytes(self.raw.read(n))

    def close(self) -> None:
        self.raw.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, listener: AdmsListener) -> None:
        self.listener = listener
        self.opts = listener.opts
        self.active: Counter[str] = Counter()
        self.active_total = 0
        self.count_lock = threading.Lock()
        # Bodies held at once, in bytes: 64 connections of 8 MiB would not fit in a Pi's RAM.
        self.body_budget = BODY_BUDGET_BODIES * self.opts.max_body_bytes
        family = socket.AF_INET6 if ":" in self.opts.host else socket.AF_INET
        self.address_family = family
        super().__init__((self.opts.host, self.opts.port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        addr = str(client_address[0])
        with self.count_lock:
            over = (
                self.active_total >= self.opts.max_connections
                or self.active[addr] >= self.opts.max_per_address
            )
            if not over:
                self.active_total += 1
                self.active[addr] += 1
        if over:  # closed at once: a flood must not hold threads or memory
            self.listener.refused_connections += 1
            self.shutdown_request(request)
            return
        t = threading.Thread(
            target=self._serve_one, args=(request, client_address, addr), name="adms-http"
        )
        t.daemon = True
        t.start()

    def _serve_one(self, request: Any, client_address: Any, addr: str) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception as err:  # a broken client never reaches the server loop
            log.debug("adms request failed", address=addr, error=repr(err))
        finally:
            self.shutdown_request(request)
            with self.count_lock:
                self.active_total -= 1
                self.active[addr] -= 1
                if self.active[addr] <= 0:
                    del self.active[addr]

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("adms request error", address=client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "attendance-gateway"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.deadline = time.monotonic() + self.server.opts.request_timeout_s
        self.rfile = _Reader(self.rfile, self.connection, self.deadline)  # type: ignore[assignment]
        self.channel: Channel | None = None
        self.reserved = 0  # bytes of the body budget this request holds

    def handle(self) -> None:
        self.close_connection = True
        self.command, self.requestline, self.request_version = "", "", "HTTP/1.0"
        try:
            self.handle_one_request()
        except http.client.LineTooLong:  # a request line over the head budget
            with contextlib.suppress(OSError):
                self.send_error(414)
        except (TimeoutError, ConnectionError, OSError) as err:
            log.debug("adms client dropped", address=self.client_address[0], error=repr(err))

    def send_response(self, code: int, message: str | None = None) -> None:
        # Not the base class's: it always adds ``Date``, which moves terminals' clocks.
        self.send_response_only(code, message)
        self.send_header("Server", self.server_version)
        ch = self.channel
        if ch is not None and ch.may_set_clock():
            self.send_header("Date", self.date_time_string())
        self.send_header("Connection", "close")

    error_message_format = "%(code)d %(message)s\n"
    error_content_type = "text/plain"

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Garbage parses as HTTP/0.9, which gets no status line: answer it as 1.0 (a 4xx).
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        if self.channel is not None:
            self.channel.count("bad_requests")
        super().send_error(code, message, explain)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("adms http", address=self.client_address[0], message=format % args)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    # -- the protocol --------------------------------------------------------------------
    def _serve(self) -> None:
        try:
            self._route()
        finally:
            if self.reserved:
                with self.server.count_lock:
                    self.server.body_budget += self.reserved
                self.reserved = 0

    def _route(self) -> None:
        listener = self.server.listener
        hub = listener.hub
        addr = str(self.client_address[0])
        url = urlsplit(self.path)
        path = url.path.removesuffix(".aspx")
        try:
            query = {k: v[0] for k, v in parse_qs(url.query, max_num_fields=32).items()}
        except ValueError:
            return self._answer(400, b"too many query fields")
        sn = query.get("SN") or query.get("sn")
        if not self.server.opts.allowed(addr):
            hub.refused(sn if p.valid_sn(sn) else None, addr, "address outside allow_networks")
            return self._answer(403, b"forbidden")
        if path not in PATHS:
            return self._answer(404, b"not found")
        if not p.valid_sn(sn):
            return self._answer(400, b"missing or bad SN")
        assert sn is not None
        ch = hub.find(sn)
        if ch is None:
            hub.refused(sn, addr, "unknown serial number")
            log.warning("adms terminal refused", serial_number=sn, address=addr)
            return self._answer(403, b"unknown terminal")
        self.channel = ch
        ch.seen(addr)
        body = self._body(ch) if self.command == "POST" else b""
        if body is None:
            return
        if path == "/iclock/getrequest":
            if "INFO" in query:  # push 2.x polls carry "INFO=ver,users,fp,logs,ip,..."
                ch.learn({"INFO": query["INFO"]})
            return self._answer(200, p.commands_reply(ch.take_commands()))
        if path == "/iclock/devicecmd":
            results = p.parse_devicecmd(body)
            if not results and body.strip():
                return self._answer(400, b"no ID=..&Return=.. result")
            ch.command_results(results)
            return self._answer(200, b"OK")
        if path == "/iclock/cdata" and self.command == "GET":
            if query.get("options") == "all":
                return self._answer(200, listener.handshake(ch))
            return self._answer(200, b"OK")
        if path == "/iclock/cdata" and query.get("table", "").upper() == "ATTLOG":
            return self._attlog(ch, body, query.get("Stamp") or query.get("stamp"))
        if path == "/iclock/cdata":
            table = query.get("table", "")
            if not p.plausible_table(table):
                return self._answer(400, b"bad table name")
            n = p.count_lines(body)
            if table.upper() in ("OPTIONS", "INFO") or b"~DeviceName" in body:
                ch.learn(p.parse_kv_lines(body))
            if table and table.upper() not in p.KNOWN_TABLES:
                ch.count("unknown_tables")
                log.info("adms table not known, accepted", terminal=ch.name, table=table[:32])
            ch.count("other_records", n)
            return self._answer(200, f"OK:{n}".encode())
        return self._answer(200, b"OK")  # ping, registry, push: alive is all they say

    def _body(self, ch: Channel) -> bytes | None:
        if self.headers.get("Transfer-Encoding"):
            self._answer(411, b"send Content-Length")
            return None
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if length < 0:
            self._answer(400, b"bad Content-Length")
            return None
        if length > self.server.opts.max_body_bytes:
            self._answer(413, b"body too large")
            return None
        with self.server.count_lock:
            if length > self.server.body_budget:
                length = -1
            else:
                self.server.body_budget -= length
                self.reserved = length
        if length < 0:  # other uploads hold the memory: the terminal sends it again later
            ch.count("refused_busy")
            self._answer(503, b"busy: send again later")
            return None
        chunks: list[bytes] = []
        left = length
        while left > 0:
            chunk = self.rfile.read(min(left, 65536))
            if not chunk:
                ch.count("bad_requests")
                return None  # the client went away mid-body: nothing to answer
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _attlog(self, ch: Channel, body: bytes, stamp: str | None) -> None:
        listener = self.server.listener
        parsed = p.parse_attlog(body, listener.zone)
        lines = len(parsed.records) + len(parsed.bad)
        if parsed.bad:
            ch.count("bad_lines", len(parsed.bad))
            log.warning(
                "adms bad lines",
                terminal=ch.name,
                count=len(parsed.bad),
                first=[(b.lineno, b.reason, b.text) for b in parsed.bad[:3]],
            )
        if not parsed.records:
            if parsed.bad:  # nothing readable at all: a broken client, not a terminal's log
                return self._answer(400, b"no readable ATTLOG line")
            return self._answer(200, b"OK:0")
        batch = Batch(ch.build(parsed.records), stamp)
        if not ch.submit(batch):
            return self._answer(503, b"not ready: send again later")
        left = max(0.1, min(self.server.opts.ack_timeout_s, self.deadline - time.monotonic() + 5))
        if not batch.done.wait(left) or not batch.ok:
            # Not committed (yet): the terminal keeps the records and sends them again.
            log.warning("adms batch not committed", terminal=ch.name, why=batch.why or "timeout")
            return self._answer(503, b"not committed: send again later")
        if not ch.querying():
            listener.hub.committed(ch.sn, stamp)
        ch.count("uploads")
        ch.count("records", len(parsed.records))
        return self._answer(200, f"OK:{lines}".encode())

    def _answer(self, code: int, body: bytes) -> None:
        if code >= 400 and code != 503 and self.channel is not None:
            self.channel.count("bad_requests")
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):  # the terminal hung up: it will ask again
            self.wfile.write(body)


class AdmsListener:
    """Binds (retrying every few seconds when the port is taken) and serves until stopped."""

    def __init__(self, opts: ListenerOptions, hub: Hub, *, zone: Any, server_ver: str = "2.4.1"):
        self.opts = opts
        self.hub = hub
        self.zone = zone
        self.server_ver = server_ver
        self.refused_connections = 0
        self.error: str | None = None
        self._server: _Server | None = None
        self._stop = threading.Event()
        self._bound = threading.Event()
        self._thread = threading.Thread(target=self._run, name="adms-listener", daemon=True)

    @property
    def port(self) -> int | None:
        return int(self._server.server_address[1]) if self._server is not None else None

    def start(self, wait_s: float = 5.0) -> None:
        self._thread.start()
        self._bound.wait(wait_s)

    def stop(self) -> None:
        self._stop.set()
        for ch in list(self.hub.channels.values()):
            ch.detach("gateway stopping")  # waiting uploads: 503 now, sent again later
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._thread.join(5.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._server = _Server(self)
            except OSError as err:
                self.error = f"cannot listen on {self.opts.host}:{self.opts.port}: {err}"
                self.hub.listener_error = self.error
                log.error("adms listener cannot bind", error=self.error)
                self._stop.wait(5.0)
                continue
            self.error = self.hub.listener_error = None
            self._bound.set()
            log.info("adms listener up", host=self.opts.host, port=self.port)
            self._server.serve_forever(poll_interval=0.5)
            return

    def handshake(self, ch: Channel) -> bytes:
        """``GET OPTION FROM``: our cursor, the periods, and the zone only when allowed."""
        tz = p.timezone_option(self.zone, ch.now()) if ch.may_set_clock() else None
        return p.handshake_reply(
            ch.sn, self.hub.stamp(ch.sn), ch.delay_s, self.opts.error_delay_s, tz, self.server_ver
        )

    def status(self) -> dict[str, Any]:
        srv = self._server
        return {
            "listen": f"{self.opts.host}:{self.port or self.opts.port}",
            "error": self.error,
            "connections": srv.active_total if srv is not None else 0,
            "refused_connections": self.refused_connections,
        }
