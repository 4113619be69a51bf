"""Signed command envelopes (PRODUCT.md §10, issue 16): parse, canonical bytes, sign, verify.

Sans-IO: bytes in, an :class:`Envelope` or a :class:`Refusal` out; no MQTT, no store.

Envelope: ``{"v":1,"id","verb","args","issuer","issued_at","expires_at","sig"}``. ``issuer``
names the key in ``[remote] keys`` that signed it (so the key, not the broker login, is
who asks). ``sig`` is the standard base64 of the 64-byte Ed25519 signature over the
*canonical encoding*: the envelope without ``sig``, as JSON with keys sorted, no
whitespace, UTF-8 and non-ASCII characters unescaped (Python
``json.dumps(o, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``). For ASCII keys
and integer numbers this equals RFC 8785 (JCS), so a signer in another language can produce
it; non-integer numbers are refused anywhere in the envelope because their text form is
where encoders differ. Duplicate keys, NaN/Infinity and anything over :data:`MAX_BYTES` are
refused before anything else is looked at.

Crypto is the ``cryptography`` package (docs/remote.md says why): Ed25519 verification is
OpenSSL's constant-time code and it ships wheels for aarch64 and armv7l.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

VERSION = 1
MAX_BYTES = 32 * 1024  # a command is a few hundred bytes: anything this big is not one
MAX_ARGS_BYTES = 8 * 1024
MAX_DEPTH = 6
FIELDS = ("v", "id", "verb", "args", "issuer", "issued_at", "expires_at", "sig")
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
SIG_BYTES = 64
KEY_BYTES = 32


class Refusal(Exception):
    """The envelope is refused; ``kind`` is the machine-readable reason (docs/remote.md)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Envelope:
    """A well-formed envelope (not yet verified: see :func:`verify`)."""

    id: str
    verb: str
    args: dict[str, Any]
    issuer: str
    issued_at: datetime
    expires_at: datetime
    sig: bytes
    signed: bytes  # the canonical bytes the signature covers


@dataclass(frozen=True)
class Hints:
    """What could be read from a payload even when it is refused (for the audit)."""

    id: str | None = None
    verb: str | None = None
    issuer: str | None = None


# -- encoding ---------------------------------------------------------------------------------
def canonical(obj: Mapping[str, Any]) -> bytes:
    """The bytes that are signed: ``obj`` without ``sig``, sorted keys, no spaces, UTF-8."""
    body = {k: v for k, v in obj.items() if k != "sig"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make(
    verb: str,
    args: Mapping[str, Any],
    *,
    issuer: str,
    issued_at: datetime,
    expires_at: datetime,
    cmd_id: str,
    key: Ed25519PrivateKey,
) -> dict[str, Any]:
    """A signed envelope, ready to ``json.dumps`` (the operator's side: ``remote sign``)."""
    obj: dict[str, Any] = {
        "v": VERSION,
        "id": cmd_id,
        "verb": verb,
        "args": dict(args),
        "issuer": issuer,
        "issued_at": iso(issued_at),
        "expires_at": iso(expires_at),
    }
    _check_numbers(obj["args"], 0)
    obj["sig"] = base64.b64encode(key.sign(canonical(obj))).decode()
    return obj


# -- parsing ----------------------------------------------------------------------------------
def _no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise Refusal("malformed", f"duplicate key {k!r}")
        out[k] = v
    return out


def _no_constant(name: str) -> Any:
    raise Refusal("malformed", f"{name} is not a JSON number")


def _check_numbers(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise Refusal("malformed", f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, float):
        raise Refusal("malformed", "numbers must be integers (the canonical form of others varies)")
    if isinstance(value, dict):
        for v in value.values():
            _check_numbers(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_numbers(v, depth + 1)


def hints(payload: bytes) -> Hints:
    """Best-effort id/verb/issuer of any payload, for the audit of a refused one."""
    try:
        obj = json.loads(payload[:MAX_BYTES])
    except (ValueError, UnicodeDecodeError, RecursionError, Refusal):
        return Hints()
    if not isinstance(obj, dict):
        return Hints()

    def text(key: str) -> str | None:
        v = obj.get(key)
        return v[:64] if isinstance(v, str) else None

    return Hints(text("id"), text("verb"), text("issuer"))


def parse(payload: bytes) -> Envelope:
    """A well-formed envelope, or :class:`Refusal` (``malformed``, ``unsigned``)."""
    if len(payload) > MAX_BYTES:
        raise Refusal("malformed", f"envelope of {len(payload)} bytes > {MAX_BYTES}")
    try:
        obj = json.loads(payload, object_pairs_hook=_no_dupes, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise Refusal("malformed", f"not JSON: {err}") from None
    if not isinstance(obj, dict):
        raise Refusal("malformed", "expected a JSON object")
    sig_text = obj.get("sig")
    if sig_text is None or sig_text == "":
        raise Refusal("unsigned", "no signature ('sig'): remote commands must be signed")
    unknown = sorted(set(obj) - set(FIELDS))
    if unknown:
        raise Refusal("malformed", f"unknown field(s): {', '.join(unknown)}")
    missing = [k for k in FIELDS if k not in obj]
    if missing:
        raise Refusal("malformed", f"missing field(s): {', '.join(missing)}")
    if obj["v"] != VERSION or isinstance(obj["v"], bool):
        raise Refusal("malformed", f"unsupported envelope version {obj['v']!r} (expected 1)")
    for key, rule in (("id", ID), ("issuer", NAME)):
        if not isinstance(obj[key], str) or not rule.match(obj[key]):
            raise Refusal("malformed", f"{key!r}: expected {rule.pattern}")
    verb = obj["verb"]
    if not isinstance(verb, str) or not 0 < len(verb) <= 64:
        raise Refusal("malformed", "'verb': expected a string")
    args = obj["args"]
    if not isinstance(args, dict):
        raise Refusal("malformed", "'args': expected an object")
    _check_numbers(obj, 0)
    if len(json.dumps(args)) > MAX_ARGS_BYTES:
        raise Refusal("malformed", f"'args' larger than {MAX_ARGS_BYTES} bytes")
    issued, expires = _time(obj, "issued_at"), _time(obj, "expires_at")
    if expires <= issued:
        raise Refusal("malformed", "'expires_at' must be after 'issued_at'")
    if not isinstance(sig_text, str):
        raise Refusal("malformed", "'sig': expected base64 text")
    try:
        sig = base64.b64decode(sig_text, validate=True)
    except (binascii.Error, ValueError):
        raise Refusal("bad_signature", "'sig' is not valid base64") from None
    if len(sig) != SIG_BYTES:
        raise Refusal("bad_signature", f"'sig' is {len(sig)} bytes, an Ed25519 one is 64")
    try:
        signed = canonical(obj)
    except UnicodeEncodeError:  # a lone surrogate (\ud800) survives json.loads, not UTF-8
        raise Refusal("malformed", "text that is not valid Unicode") from None
    return Envelope(obj["id"], verb, args, obj["issuer"], issued, expires, sig, signed)


def _time(obj: Mapping[str, Any], key: str) -> datetime:
    text = obj[key]
    if not isinstance(text, str) or len(text) > 40:
        raise Refusal("malformed", f"{key!r}: expected an ISO 8601 time such as 2026-11-29T03:00Z")
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Refusal("malformed", f"{key!r}: not an ISO 8601 time: {text!r}") from None
    if dt.tzinfo is None:
        raise Refusal("malformed", f"{key!r}: needs a zone (Z or +hh:mm): {text!r}")
    return dt


# -- verification -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Key:
    """One ``[[remote.keys]]`` entry: who, the public half, which verbs (``*`` = all)."""

    name: str
    public_key: bytes
    verbs: frozenset[str]

    def allows(self, verb: str) -> bool:
        return "*" in self.verbs or verb in self.verbs


def verify(env: Envelope, keys: Iterable[Key]) -> Key:
    """The key that signed ``env``, or :class:`Refusal` (``unknown_key``, ``bad_signature``)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = next((k for k in keys if k.name == env.issuer), None)
    if key is None:
        raise Refusal("unknown_key", f"no key named {env.issuer!r} in [remote] keys")
    try:
        Ed25519PublicKey.from_public_bytes(key.public_key).verify(env.sig, env.signed)
    except InvalidSignature:
        raise Refusal("bad_signature", f"signature does not verify with key {key.name!r}") from None
    return key


# -- keys -------------------------------------------------------------------------------------
def public_key_bytes(text: str) -> bytes:
    """The 32 raw bytes of a public key written as base64 (``ValueError`` when it is not)."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"{len(raw)} bytes, an Ed25519 public key is {KEY_BYTES}")
    return raw


def public_key_text(key: Ed25519PrivateKey) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key


def new_private_key() -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()
