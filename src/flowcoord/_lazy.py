"""Public names: imported on first use (PEP 562) for modules that would bring a driver, and
shown under the public path they are documented at (``__module__``)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

__all__ = ["lazy_names", "publish"]


def publish(package: str, values: Iterable[object]) -> None:
    """Show each class and function in ``values`` as ``package.<name>`` (``__module__``), the
    public path users import it from; other values (constants, aliases) are left alone."""
    for value in values:
        if isinstance(value, type) or (callable(value) and hasattr(value, "__qualname__")):
            module = getattr(value, "__module__", "")
            if module.startswith("flowcoord.") and module.split(".")[-1].startswith("_"):
                cast(Any, value).__module__ = package


def lazy_names(
    package: str, names: Mapping[str, str], *, submodules: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``names`` maps each lazy name to the
    module (relative to ``package``) it comes from; the first use imports it, keeps it and
    publishes it under ``package``. ``submodules`` are imported on first use as well."""
    subs = frozenset(submodules)

    def __getattr__(name: str) -> Any:
        if name in subs:
            return importlib.import_module(f"{package}.{name}")  # sets the attribute
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        publish(package, [value])
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *names, *subs})

    return __getattr__, __dir__
