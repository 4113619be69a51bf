"""``doctor``'s broker checks, one step at a time: DNS → TCP → TLS handshake → MQTT login.

Each step says exactly where the chain breaks, because each has a different fix: a DNS
failure is the Pi's resolver or a typo, a refused or timed-out TCP connect is the WAN or a
firewall, a failed TLS handshake is the CA file or the Pi's date, a refused login is the
username or password file. Later steps are skipped once one fails.

The login uses its own client id (``<client_id>-doctor-<pid>``): reusing the daemon's would
make the broker disconnect the running daemon (MQTT "session takeover"). A cloud profile
(issue 19, PRODUCT.md §9) logs in as the device itself, with the credentials the gateway
computes; platforms allow one connection per device, so while the daemon is connected the
login is never tried: the daemon's own view (connected since, what the broker allows) is
reported instead. A login signed with the time is not tried before NTP sync (fault 5).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gateway.config import MqttSection
from gateway.ops.checks import FAIL, PASS, SKIP, WARN, Check

CERT_WARN_DAYS = 30
STEP_TIMEOUT_S = 5.0
LOGIN_TIMEOUT_S = 10.0


def broker_checks(
    cfg: MqttSection,
    timeout: float = STEP_TIMEOUT_S,
    *,
    daemon_view: dict[str, Any] | None = None,
    clock_synced: Callable[[], bool] = lambda: True,
) -> list[Check]:
    """``daemon_view`` is the running daemon's ``broker`` snapshot (None: not running)."""
    steps = ["broker DNS", "broker TCP", "broker TLS", "broker login"]
    out: list[Check] = []
    addrs = _dns(cfg, timeout, out)
    addr = _tcp(cfg, addrs, timeout, out) if addrs else None
    if addr is not None and _tls(cfg, addr, timeout, out):
        if daemon_view and daemon_view.get("connected"):
            out += _daemon_login(cfg, daemon_view)
        elif _clock_ready(cfg, clock_synced, out):
            _login(cfg, out)
    for name in steps[len(out) :]:
        out.append(Check(name, SKIP, "not tried: an earlier step failed"))
    return out


def _dns(cfg: MqttSection, timeout: float, out: list[Check]) -> list[str] | None:
    """Every address the host resolves to, in the resolver's order (None if it does not)."""
    try:
        ipaddress.ip_address(cfg.host)
        out.append(Check("broker DNS", PASS, f"{cfg.host} is an IP address (no DNS needed)"))
        return [cfg.host]
    except ValueError:
        pass
    result: dict[str, Any] = {}

    def resolve() -> None:  # getaddrinfo has no timeout of its own
        try:
            result["infos"] = socket.getaddrinfo(cfg.host, cfg.port, type=socket.SOCK_STREAM)
        except OSError as err:
            result["error"] = err

    t = threading.Thread(target=resolve, name="doctor-dns", daemon=True)
    t.start()
    t.join(timeout)
    fix = (
        "check [mqtt] host for typos and the Pi's DNS: `resolvectl status` or "
        "/etc/resolv.conf; is the WAN up (`ping -c1 1.1.1.1`)?"
    )
    if "infos" in result:
        ips = list(dict.fromkeys(str(info[4][0]) for info in result["infos"]))
        out.append(Check("broker DNS", PASS, f"{cfg.host} → {', '.join(ips)}"))
        return ips
    err = result.get("error")
    why = f"{err.strerror or err}" if isinstance(err, OSError) else f"no answer in {timeout:.0f} s"
    out.append(Check("broker DNS", FAIL, f"cannot resolve {cfg.host!r}: {why}", fix))
    return None


def _tcp(cfg: MqttSection, addrs: list[str], timeout: float, out: list[Check]) -> str | None:
    """The first address that accepts a connection, trying each in turn as the MQTT client
    does (a dual-stack name whose IPv6 route is broken still works over IPv4)."""
    failures: list[str] = []
    for addr in addrs:
        t0 = time.monotonic()
        try:
            with socket.create_connection((addr, cfg.port), timeout=timeout):
                pass
        except OSError as err:
            why = (
                "timed out (packets dropped: firewall or WAN down?)"
                if isinstance(err, TimeoutError)
                else (err.strerror or str(err))
            )
            failures.append(f"{addr}: {why}")
            continue
        ms = (time.monotonic() - t0) * 1000
        also = f" (not {'; '.join(failures)})" if failures else ""
        out.append(
            Check("broker TCP", PASS, f"{addr}:{cfg.port} accepts connections ({ms:.0f} ms){also}")
        )
        return addr
    out.append(
        Check(
            "broker TCP",
            FAIL,
            f"cannot connect to port {cfg.port}: {'; '.join(failures)}",
            f"check [mqtt] port ({cfg.port}), outbound TCP {cfg.port} on the office firewall, "
            "and the WAN link",
        )
    )
    return None


def _tls(cfg: MqttSection, addr: str, timeout: float, out: list[Check]) -> bool:
    if not cfg.tls:
        out.append(Check("broker TLS", SKIP, "tls = false: plain MQTT (use TLS over the Internet)"))
        return True
    from gateway.uplink.link import make_tls_context

    try:
        ctx = make_tls_context(cfg)
    except (OSError, ssl.SSLError) as err:
        out.append(
            Check(
                "broker TLS",
                FAIL,
                f"cannot load the TLS files: {err}",
                "check [mqtt] ca_file / cert_file / key_file (PEM, readable by attgw)",
                fault=6,
            )
        )
        return False
    try:
        with (
            socket.create_connection((addr, cfg.port), timeout=timeout) as raw,
            ctx.wrap_socket(raw, server_hostname=cfg.host) as tls,
        ):
            cert = tls.getpeercert() or {}
            version = tls.version()
    except ssl.SSLCertVerificationError as err:
        out.append(
            Check(
                "broker TLS",
                FAIL,
                f"the broker's certificate is not trusted: {err.verify_message}",
                "set [mqtt] ca_file to the CA that signed the broker's certificate, and check the "
                "Pi's date (`date`; an unsynced clock makes valid certificates look expired)",
                fault=6,
            )
        )
        return False
    except (OSError, ssl.SSLError) as err:
        out.append(
            Check(
                "broker TLS",
                FAIL,
                f"TLS handshake failed: {err}",
                "is this port TLS? (8883 is TLS, 1883 is plain); client certificate "
                "accepted by the broker?",
                fault=6,
            )
        )
        return False
    not_after = cert.get("notAfter")
    if isinstance(not_after, str):
        expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), UTC)
        days = (expires - datetime.now(UTC)).total_seconds() / 86400
        detail = f"{version}, certificate valid until {expires:%Y-%m-%d} ({days:.0f} days)"
        if days < CERT_WARN_DAYS:
            out.append(
                Check(
                    "broker TLS",
                    WARN,
                    detail + ": expires soon",
                    "ask the broker's operator to renew its certificate",
                    fault=6,
                )
            )
            return True
        out.append(Check("broker TLS", PASS, detail))
    else:
        out.append(Check("broker TLS", PASS, f"{version}, certificate verified"))
    return True


def _daemon_login(cfg: MqttSection, view: dict[str, Any]) -> list[Check]:
    """The daemon is logged in: say so, and what the broker allows, without a second login."""
    profile = view.get("profile") or cfg.profile
    out = [
        Check(
            "broker login",
            PASS,
            f"the daemon is logged in ({profile}, for {view.get('for_s', '?')} s): not logging "
            "in a second time with the device's identity (one connection per device)",
        )
    ]
    caps = view.get("capabilities") or {}
    if caps:
        why = caps.get("why") or {}
        bits = [
            f"retain {'yes' if caps.get('retain') else 'no'}",
            f"will {'yes' if caps.get('will') else 'no'}",
            f"max message {caps.get('max_message_bytes')} B",
            f"window {caps.get('window')}",
            f"rate ≤ {caps.get('max_publish_rate')}/s",
        ]
        detail = ", ".join(bits) + "".join(f"; {k}: {v}" for k, v in why.items())
        if not caps.get("qos1", True):
            out.append(
                Check(
                    "broker capabilities",
                    FAIL,
                    detail + ": punches are held",
                    "the broker allows QoS 0 only: ask its operator for QoS 1",
                    fault=6,
                )
            )
        else:
            out.append(Check("broker capabilities", PASS, detail))
    return out


def _clock_ready(cfg: MqttSection, synced: Callable[[], bool], out: list[Check]) -> bool:
    from gateway.uplink import profiles

    prof = profiles.build(cfg)
    if not prof.needs_clock() or synced():
        return True
    out.append(
        Check(
            "broker login",
            FAIL,
            f"not tried: {prof.clock_detail} and the Pi's clock is not NTP-synchronised",
            "see the clock check: the daemon logs in by itself once NTP has synced",
            fault=5,
        )
    )
    return False


def _login(cfg: MqttSection, out: list[Check]) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from gateway.uplink import profiles
    from gateway.uplink.link import LOGIN_REFUSED, make_tls_context, reason_value

    v5 = cfg.protocol == "5"
    creds = profiles.build(cfg).credentials()
    # generic: a client id of its own (no session takeover); a platform knows one identity
    # per device, and the daemon is not connected (or this would not run).
    cid = creds.client_id
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{cid or 'gateway'}-doctor-{os.getpid()}" if cfg.profile == "generic" else cid,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else True,
    )
    if creds.username:
        client.username_pw_set(creds.username, creds.password)
    if cfg.tls:
        client.tls_set_context(make_tls_context(cfg))
    done = threading.Event()
    answer: dict[str, Any] = {}

    def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        answer["code"], answer["reason"] = reason_value(rc), str(rc)
        done.set()

    def on_disconnect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        answer.setdefault("code", reason_value(rc))
        answer.setdefault("reason", f"disconnected before CONNACK: {rc}")
        done.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    who = f"as {creds.username!r}" if creds.username else "without a username"
    try:
        client.connect(cfg.host, cfg.port, keepalive=10)
        client.loop_start()
        done.wait(LOGIN_TIMEOUT_S)
    except (OSError, ssl.SSLError) as err:
        answer = {"code": -1, "reason": str(err)}
    finally:
        try:
            client.disconnect()
        finally:
            client.loop_stop()
    code = answer.get("code")
    if code is None:
        out.append(
            Check(
                "broker login",
                FAIL,
                f"no CONNACK within {LOGIN_TIMEOUT_S:.0f} s",
                "the broker accepts TCP but does not answer MQTT: wrong port?",
            )
        )
    elif code == 0:
        out.append(Check("broker login", PASS, f"MQTT {cfg.protocol} login accepted {who}"))
    elif code in LOGIN_REFUSED or code in (4, 5):
        src = cfg.password_source or "no password configured"
        fix = (
            f"check [mqtt] username and the password in {src}; ask the broker's operator "
            "whether this gateway's account and ACL exist"
        )
        if cfg.profile != "generic":  # issue 19: the identity and secret of the profile
            key = getattr(cfg.profile_options, "key_file", None)
            fix = (
                f"check the [mqtt.{cfg.profile}] identifiers and the secret in {key}, and that "
                "the device exists and is enabled on the platform (docs/cloud.md)"
            )
        out.append(
            Check(
                "broker login",
                FAIL,
                f"the broker refused the login {who}: {answer['reason']}",
                fix,
                fault=6,
            )
        )
    else:
        out.append(
            Check(
                "broker login",
                FAIL,
                f"login failed {who}: {answer['reason']}",
                "see the broker's log for this client id",
                fault=6,
            )
        )
