"""Issue 7: fuzz the config loader. Whatever TOML-shaped document arrives (random trees, or a
valid config with keys and values swapped for junk), ``gateway.config.parse`` returns a Config
or raises ``ConfigError`` with issues that name a TOML path — never another exception."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import Config, parse
from gateway.errors import ConfigError

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# What tomllib can produce: str, int, float, bool, datetimes, arrays, tables.
SCALARS = (st.text(max_size=20) | st.integers(min_value=-(2**63), max_value=2**63 - 1)
           | st.floats(allow_nan=True) | st.booleans() | st.datetimes() | st.dates()
           | st.times())
KEYS = st.sampled_from(["id", "data_dir", "timezone", "host", "port", "tls", "driver", "name",
                        "framing", "baudrate", "password", "password_file", "keepalive_s",
                        "terminals", "gateway", "mqtt", "store", "leds", "file", "rate",
                        "min_free_disk_mb", "backend", "transport", "debounce_s"]) | st.text(
    max_size=8)
TREES = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=4)
                     | st.dictionaries(KEYS, kids, max_size=5), max_leaves=25)

BASE: dict[str, Any] = {
    "gateway": {"id": "gw-1", "data_dir": "/tmp/x", "timezone": "Asia/Shanghai"},
    "mqtt": {"host": "broker", "port": 8883, "tls": True, "keepalive_s": 30},
    "store": {"min_free_disk_mb": 200},
    "leds": {"backend": "null"},
    "terminals": [
        {"name": "lobby", "driver": "zk", "host": "10.0.0.2", "port": 4370},
        {"name": "door", "driver": "serial", "port": "/dev/ttyUSB0", "framing": "line",
         "baudrate": 9600, "debounce_s": 3},
        {"name": "v", "driver": "virtual", "rate": 1.0},
    ],
}


def _check(doc: Any) -> None:
    try:
        cfg = parse(doc, check_files=False)
    except ConfigError as err:
        assert err.issues, "a ConfigError always says what is wrong"
        for issue in err.issues:
            assert isinstance(issue.path, str) and issue.message
    else:
        assert isinstance(cfg, Config)


def test_base_config_is_valid():
    assert isinstance(parse(copy.deepcopy(BASE), check_files=False), Config)


@SETTINGS
@given(st.dictionaries(KEYS, TREES, max_size=6))
def test_random_documents_only_raise_config_error(doc):
    _check(doc)


PATHS = st.sampled_from([("gateway",), ("mqtt",), ("store",), ("leds",), ("terminals", 0),
                         ("terminals", 1), ("terminals", 2)])


@SETTINGS
@given(st.lists(st.tuples(PATHS, KEYS, TREES | SCALARS), min_size=1, max_size=6),
       st.lists(st.tuples(PATHS, KEYS), max_size=3))
def test_mutated_valid_config_only_raises_config_error(sets, deletes):
    doc = copy.deepcopy(BASE)
    for path, key, value in sets:
        table = doc
        for part in path:
            table = table[part]
        table[key] = value
    for path, key in deletes:
        table = doc
        for part in path:
            table = table[part]
        table.pop(key, None)
    _check(doc)


@SETTINGS
@given(st.sampled_from(["gateway", "mqtt", "store", "leds", "terminals"]), TREES)
def test_a_section_of_the_wrong_type_is_a_config_error(section, value):
    doc = copy.deepcopy(BASE)
    doc[section] = value
    _check(doc)
