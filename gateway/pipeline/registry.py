"""Driver registry: name → driver class, imported lazily, with errors that name the choices."""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points
from typing import cast

from drivers import BUILTIN
from gateway.errors import DriverNotFound
from gateway.pipeline.driver import DriverSpec

ENTRY_POINT_GROUP = "attendance_gateway.drivers"


def available() -> dict[str, str]:
    """Every known driver name mapped to its ``module:Class`` target."""
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return {**BUILTIN, **found}


def load(name: str) -> DriverSpec:
    """Import the driver class for ``name``; raise ``DriverNotFound`` listing valid names."""
    targets = available()
    try:
        target = targets[name]
    except KeyError:
        choices = ", ".join(f'"{n}"' for n in sorted(targets))
        raise DriverNotFound(f"unknown driver {name!r}; expected one of {choices}") from None
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise DriverNotFound(f"driver {name!r} ({target}) cannot be loaded: {err}") from err
    return cast(DriverSpec, cls)
