"""Built-in terminal drivers.

``BUILTIN`` maps a ``[[terminals]] driver = "..."`` name to ``"module:Class"``. Values are
strings so that listing drivers imports neither pyzk nor pyserial; the registry imports a
driver only when a config uses it. Third-party drivers register under the entry-point group
``attendance_gateway.drivers`` instead.
"""

BUILTIN: dict[str, str] = {
    "zk": "drivers.zk_terminal.driver:ZkDriver",
    "serial": "drivers.serial_reader.driver:SerialDriver",
    "virtual": "drivers.virtual:VirtualDriver",
    "adms": "drivers.adms.driver:AdmsDriver",
}
