"""Helpers shared by the CLI commands: loading the config, printing errors."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gateway.config import Config, config_path, load
from gateway.errors import ConfigError


def load_config(args: argparse.Namespace, path: str | None = None) -> Config:
    """Load the config or exit 2 with every issue, one per line."""
    p = config_path(path or getattr(args, "config", None))
    try:
        return load(p)
    except ConfigError as err:
        if getattr(args, "json", False):
            print(json.dumps({"ok": False, "path": str(p), "errors": [str(i) for i in err.issues]}))
        else:
            print(f"{p}: invalid config ({len(err.issues)} problem(s)):", file=sys.stderr)
            for issue in err.issues:
                print(f"  {issue}", file=sys.stderr)
        raise SystemExit(2) from None


def emit_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))
