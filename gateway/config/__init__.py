"""The gateway's configuration: TOML in, frozen dataclasses out, every problem at once.

``loader`` reads and validates ``config.toml`` (``load``, ``config_path``, the ``Config``
dataclasses); ``validate`` is the ``Fields`` helper every driver uses for its own keys;
``defaults`` holds the default values that both the loader and the CLI's fast reader
(``gateway.cli.local``) use, so there is one source of each default.
"""

from gateway.config.loader import (
    Config,
    GatewaySection,
    LedsSection,
    MqttSection,
    StoreSection,
    TerminalConfig,
    config_path,
    load,
    parse,
)

__all__ = [
    "Config",
    "GatewaySection",
    "LedsSection",
    "MqttSection",
    "StoreSection",
    "TerminalConfig",
    "config_path",
    "load",
    "parse",
]
