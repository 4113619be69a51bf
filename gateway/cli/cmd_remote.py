"""``gatewayctl remote keygen|sign|send|audit``: the operator's side of remote support over
MQTT (PRODUCT.md §10, issue 16; docs/remote.md), and the gateway's audit of it.

(Heavy imports, cryptography and paho, live in the handlers: every command module is
imported to build the parser, and ``status`` must start fast.)
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gateway.cli import local
from gateway.cli.output import emit_json, json_flag, table

DEFAULT_TTL_S = 300


def register(sub: Any) -> None:
    p = sub.add_parser(
        "remote",
        help="remote support over MQTT: keys, signed commands, the audit",
        description="Signed remote commands (docs/remote.md): make a key pair, sign a "
        "command, send it and wait for the result, list the gateway's audit of them.",
    )
    rs = p.add_subparsers(dest="remote_command", metavar="ACTION", required=True)
    k = rs.add_parser(
        "keygen",
        help="a new Ed25519 key pair; prints the [[remote.keys]] entry",
        description="Write a new private key (PEM, mode 0600, never overwritten) and print "
        "the config entry with its public half for the gateway's [remote] section.",
    )
    k.add_argument("--name", required=True, help="the key's name: the envelope's issuer")
    k.add_argument("--out", metavar="FILE", help="private key file (default: ./NAME.key)")
    json_flag(k)
    k.set_defaults(func=_keygen)
    for name, text in (
        ("sign", "print a signed envelope (JSON) for a command"),
        ("send", "sign (or take) an envelope, publish it, wait for the result"),
    ):
        a = rs.add_parser(name, help=text, description=text)
        _command_args(a, required=name == "sign")
        if name == "send":
            _broker_args(a)
        json_flag(a)
        a.set_defaults(func=_sign if name == "sign" else _send)
    au = rs.add_parser(
        "audit",
        help="the gateway's audit of remote commands (newest first)",
        description="Every remote command this gateway received, accepted or refused, with "
        "its key (issuer), approver, outcome and result. Never pruned.",
    )
    au.add_argument("--limit", type=int, default=50, metavar="N")
    json_flag(au)
    au.set_defaults(func=_audit)


def _command_args(a: argparse.ArgumentParser, *, required: bool) -> None:
    a.add_argument("verb", nargs="?", help="status, doctor, terminals, terminal.pull, ...")
    a.add_argument("--key", metavar="FILE", help="private key (from remote keygen)")
    a.add_argument("--issuer", help="the key's name in the gateway's [remote] keys")
    a.add_argument(
        "--arg", action="append", default=[], metavar="K=V", help="a text argument; repeatable"
    )
    a.add_argument(
        "--arg-json",
        action="append",
        default=[],
        metavar="K=JSON",
        help="an argument given as JSON (true, 100, {...}); repeatable",
    )
    a.add_argument("--ttl", type=int, default=DEFAULT_TTL_S, metavar="S", help="valid for S s")
    a.add_argument("--id", dest="cmd_id", help="command id (default: a new uuid7)")
    if not required:
        a.add_argument("--envelope", metavar="FILE", help="send this signed envelope ('-': stdin)")


def _broker_args(a: argparse.ArgumentParser) -> None:
    a.add_argument("--gateway", help="gateway id (default: the config's)")
    a.add_argument("--host", help="broker (default: the config's [mqtt] host)")
    a.add_argument("--port", type=int, help="default: the config's, else 8883/1883")
    a.add_argument("--tls", action=argparse.BooleanOptionalAction, default=None)
    a.add_argument("--ca-file", help="CA bundle for TLS")
    a.add_argument("--username", help="broker login of the support account")
    a.add_argument("--password-file", help="its password (never on the command line)")
    a.add_argument("--prefix", help="topic prefix (default: the config's, else attendance)")
    a.add_argument("--protocol", choices=("5", "3.1.1"), help="default: the config's, else 5")
    a.add_argument("--response-topic", help="MQTT 5: ask for the result on this topic")
    a.add_argument("--timeout", type=float, default=30.0, metavar="S")


def _keygen(args: argparse.Namespace) -> int:
    import os

    from gateway.remote import envelope as env

    if not env.NAME.match(args.name):
        local.fail(args, f"--name: expected {env.NAME.pattern}", 2)
    out = args.out or f"{args.name}.key"
    key = env.new_private_key()
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        local.fail(args, f"{out} exists: a key is never overwritten", 2)
    with os.fdopen(fd, "wb") as fh:
        fh.write(env.private_key_pem(key))
    public = env.public_key_text(key)
    entry = (
        f'[[remote.keys]]\nname = "{args.name}"\npublic_key = "{public}"\n'
        'verbs = ["status", "doctor", "terminals"]  # or ["*"]; see docs/remote.md'
    )
    if getattr(args, "json", False):
        emit_json({"name": args.name, "private_key": out, "public_key": public})
    else:
        print(f"private key written to {out} (keep it secret). Add to the gateway's config:\n")
        print(entry)
    return 0


def _parse_args(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item, as_json in [(a, False) for a in args.arg] + [(a, True) for a in args.arg_json]:
        name, sep, value = item.partition("=")
        if not sep or not name:
            local.fail(args, f"--arg: expected K=V, got {item!r}", 2)
        try:
            out[name] = json.loads(value) if as_json else value
        except ValueError as err:
            local.fail(args, f"--arg-json {name}: not JSON: {err}", 2)
    return out


def make_envelope(args: argparse.Namespace) -> dict[str, Any]:
    """The envelope of ``sign``/``send``: read with --envelope, else signed here."""
    from datetime import UTC, datetime, timedelta

    from gateway.pipeline.ids import uuid7
    from gateway.remote import envelope as env

    if getattr(args, "envelope", None):
        text = sys.stdin.read() if args.envelope == "-" else open(args.envelope).read()  # noqa: SIM115
        try:
            obj = json.loads(text)
        except ValueError as err:
            local.fail(args, f"--envelope: not JSON: {err}", 2)
        if not isinstance(obj, dict):
            local.fail(args, "--envelope: expected a JSON object", 2)
        return obj
    if not (args.verb and args.key and args.issuer):
        local.fail(args, "give VERB, --key and --issuer (or --envelope FILE)", 2)
    try:
        with open(args.key, "rb") as fh:
            key = env.load_private_key(fh.read())
    except (OSError, ValueError, TypeError) as err:
        local.fail(args, f"--key {args.key}: {err}", 2)
    now = datetime.now(UTC)
    try:
        return env.make(
            args.verb,
            _parse_args(args),
            issuer=args.issuer,
            issued_at=now,
            expires_at=now + timedelta(seconds=max(1, args.ttl)),
            cmd_id=args.cmd_id or str(uuid7()),
            key=key,
        )
    except env.Refusal as err:
        local.fail(args, str(err), 2)


def _sign(args: argparse.Namespace) -> int:
    print(json.dumps(make_envelope(args), ensure_ascii=False))
    return 0


def _send(args: argparse.Namespace) -> int:
    from gateway.remote.client import SendError, send

    obj = make_envelope(args)
    broker, prefix, gateway = _broker(args)
    try:
        reply = send(
            broker,
            obj,
            prefix=prefix,
            gateway=gateway,
            timeout=args.timeout,
            response_topic=args.response_topic,
        )
    except SendError as err:
        local.fail(args, str(err), 1)
    if getattr(args, "json", False):
        emit_json(reply)
    elif reply.get("ok"):
        print(json.dumps(reply.get("result"), indent=2, ensure_ascii=False, default=str))
    else:
        why = reply.get("error") or {}
        print(f"refused/failed ({why.get('kind')}): {why.get('message')}", file=sys.stderr)
    return 0 if reply.get("ok") else 1


def _broker(args: argparse.Namespace) -> tuple[Any, str, str]:
    import tomllib
    from pathlib import Path

    from gateway.config import config_path
    from gateway.config import defaults as d
    from gateway.remote.client import Broker

    mqtt: dict[str, Any] = {}
    gw: dict[str, Any] = {}
    path = config_path(getattr(args, "config", None))
    if path.exists():  # handy on a bench; the support desk passes everything explicitly
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            mqtt, gw = dict(data.get("mqtt", {})), dict(data.get("gateway", {}))
        except (OSError, ValueError):
            pass
    tls = args.tls if args.tls is not None else bool(mqtt.get("tls", d.TLS))
    host = args.host or mqtt.get("host")
    gateway = args.gateway or gw.get("id")
    if not host or not gateway:
        local.fail(args, "give --host and --gateway (no config to take them from)", 2)
    password = None
    if args.password_file:
        password = Path(args.password_file).read_text(encoding="utf-8").strip("\r\n")
    broker = Broker(
        host=str(host),
        port=int(args.port or mqtt.get("port") or (d.PORT_TLS if tls else d.PORT_PLAIN)),
        tls=tls,
        ca_file=args.ca_file or mqtt.get("ca_file"),
        username=args.username,
        password=password,
        protocol=args.protocol or str(mqtt.get("protocol", d.PROTOCOL)),
    )
    prefix = args.prefix if args.prefix is not None else str(mqtt.get("topic_prefix", "attendance"))
    return broker, prefix, str(gateway)


def _audit(args: argparse.Namespace) -> int:
    import sqlite3

    from gateway.remote.ledger import recent

    s = local.settings(args)
    try:
        with local.open_store(s) as store:
            rows = recent(store, args.limit)
    except local.StoreUnavailable as err:
        local.fail(args, str(err), 1)
    except sqlite3.OperationalError:  # a store the new daemon has not migrated yet
        rows = []
    if getattr(args, "json", False):
        emit_json(rows)
        return 0
    if not rows:
        print("no remote commands")
        return 0
    cols = ["received_at", "issuer", "verb", "approver", "outcome", "kind", "cmd_id", "detail"]
    print(table([c.upper() for c in cols], [[r[c] or "" for c in cols] for r in rows]))
    return 0
