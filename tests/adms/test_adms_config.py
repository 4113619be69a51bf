"""``[adms]`` and ``driver = "adms"`` terminals: every problem reported with its TOML path."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.config.loader import parse
from gateway.errors import ConfigError

BASE = {
    "gateway": {"id": "gw", "timezone": "Asia/Shanghai", "data_dir": "/tmp/x"},
    "mqtt": {"host": "127.0.0.1", "tls": False},
}


def _cfg(**extra):
    return parse({**BASE, **extra}, check_files=False)


def test_a_push_terminal_implies_the_listener_with_defaults():
    cfg = _cfg(terminals=[{"name": "face", "driver": "adms", "serial_number": "CJDE212460019"}])
    assert cfg.adms is not None and (cfg.adms.host, cfg.adms.port) == ("0.0.0.0", 8081)
    assert cfg.adms.allowed("192.168.1.7") and cfg.adms.allowed("10.1.2.3")
    assert not cfg.adms.allowed("8.8.8.8") and not cfg.adms.allowed("garbage")
    assert cfg.adms.allowed("::ffff:192.168.1.7")  # an IPv4 client on a dual-stack socket
    (t,) = cfg.terminals
    assert t.options.serial_number == "CJDE212460019" and t.options.sync_clock is True
    assert _cfg().adms is None  # no push terminal, no [adms]: no listener


def test_listen_and_networks_are_read():
    cfg = _cfg(adms={"listen": "[::]:9090", "allow_networks": ["192.168.1.0/24"]})
    assert (cfg.adms.host, cfg.adms.port) == ("::", 9090)
    assert cfg.adms.allow_networks == (ipaddress.ip_network("192.168.1.0/24"),)
    assert not cfg.adms.allowed("192.168.2.1")


@pytest.mark.parametrize(("table", "path"), [
    ({"adms": {"listen": "8081"}}, "adms.listen"),
    ({"adms": {"listen": "0.0.0.0:99999"}}, "adms.listen"),
    ({"adms": {"allow_networks": ["not-a-net"]}}, "adms.allow_networks"),
    ({"adms": {"allow_networks": "192.168.1.0/24"}}, "adms.allow_networks"),
    ({"adms": {"max_body_bytes": 1}}, "adms.max_body_bytes"),
    ({"adms": {"typo": 1}}, "adms.typo"),
    ({"terminals": [{"name": "f", "driver": "adms"}]}, "terminals[0].serial_number"),
    ({"terminals": [{"name": "f", "driver": "adms", "serial_number": "a b"}]},
     "terminals[0].serial_number"),
    ({"terminals": [{"name": "f", "driver": "adms", "serial_number": "S1", "host": "x"}]},
     "terminals[0].host"),
    ({"terminals": [{"name": "f", "driver": "adms", "serial_number": "S1"},
                    {"name": "g", "driver": "adms", "serial_number": "S1"}]}, "terminals"),
])
def test_mistakes_are_reported_with_their_path(table, path):
    with pytest.raises(ConfigError) as err:
        _cfg(**table)
    assert path in [i.path for i in err.value.issues], err.value.issues
