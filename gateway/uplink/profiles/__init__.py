"""Cloud broker profiles (PRODUCT.md §9, issue 19): ``[mqtt] profile`` picks one.

Each profile (``platforms``) maps §4's topics onto what its platform allows, computes its
login from a secret file (``signing``: HMAC signatures, SAS tokens), and states the
platform's known limits (no retain, no will, message size, rate, protocol). The broker's
own CONNACK is merged on top at every connect (``gateway.uplink.capabilities``).
"""

from __future__ import annotations

from typing import Any

from gateway.config.validate import Fields
from gateway.uplink.profiles.base import Credentials, Limits, ProfileOptions, TopicMap
from gateway.uplink.profiles.platforms import PROFILES, Profile

__all__ = [
    "NAMES",
    "PROFILES",
    "Credentials",
    "Limits",
    "Profile",
    "ProfileOptions",
    "TopicMap",
    "build",
    "check",
    "parse",
]

NAMES = tuple(PROFILES)


def parse(name: str, mqtt: Fields, gateway_id: str | None, check_files: bool) -> ProfileOptions:
    """Validate ``[mqtt.<name>]`` and the ``[mqtt]`` keys the profile constrains."""
    cls = PROFILES[name]
    for other in NAMES:
        if other != name and mqtt.has(other):
            mqtt.ignore(other)
            mqtt.error(other, f'a table for profile "{other}" but profile = "{name}"')
    if name == "generic":
        return ProfileOptions()
    table = Fields(mqtt.table_of(name), mqtt.key_path(name), mqtt.issues)
    opts = cls.parse(table, gateway_id, check_files)
    table.done()
    return opts


def check(name: str, section: Any, f: Fields) -> None:
    """Cross-checks once ``[mqtt]`` is read: protocol, keepalive, TLS files, login."""
    cls = PROFILES[name]
    lim = cls.limits
    if section.protocol not in lim.protocols:
        f.error("protocol", f"{name} speaks MQTT {' or '.join(lim.protocols)} only")
    if lim.keepalive_s and not lim.keepalive_s[0] <= section.keepalive_s <= lim.keepalive_s[1]:
        lo, hi = lim.keepalive_s
        f.error("keepalive_s", f"{name} accepts {lo}…{hi} s, got {section.keepalive_s}")
    if name == "aws-iot" and not (section.tls and section.cert_file):
        f.error("cert_file", "aws-iot logs in with the thing's certificate: set cert_file/key_file")
    if name != "generic" and (section.username or section.password_source):
        f.error("username", f"{name} computes its own login: remove username/password_file")
    opts: ProfileOptions = section.profile_options
    if name == "azure-iot-hub" and opts.key_file is None and not section.cert_file:
        f.error(name, "set device_key_file (SAS) or [mqtt] cert_file/key_file (x509)")
    elif cls.keyfile_option and name != "azure-iot-hub" and opts.key_file is None:
        f.error(name, f"{cls.keyfile_option} is required")


def build(mqtt: Any, gateway_id: str | None = None) -> Profile:
    """The profile object for an ``MqttSection`` (``gateway_id`` defaults to its client id)."""
    name = getattr(mqtt, "profile", "generic")
    opts = getattr(mqtt, "profile_options", None) or ProfileOptions()
    return PROFILES[name](mqtt, gateway_id or mqtt.client_id or "gateway", opts)
