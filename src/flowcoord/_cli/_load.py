"""Loading user code named on the command line: flows, registries, inputs."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Sequence
from typing import Any

from .._model._flow import Flow
from .._model._registry import FlowRegistry
from .._model._workflow import Workflow
from ..errors import ConfigurationError, FlowcoordError


def load_object(spec: str) -> Any:
    """Import ``module:attr`` (``attr`` may be dotted). The working directory is importable."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigurationError(
            f"{spec!r} is not of the form module:attr", hint="e.g. myapp.flows:build_provision"
        )
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise ConfigurationError(
                f"cannot import module {module_name!r} (no module named {missing!r})",
                hint="check the name; the current directory and PYTHONPATH are searched",
            ) from None
        raise ConfigurationError(f"importing {module_name!r} failed: {exc}") from None
    except Exception as exc:
        raise ConfigurationError(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigurationError(
                f"module {module_name!r} has no attribute {attr!r}",
                hint="name a Flow, a zero-argument function returning one, or a FlowRegistry",
            ) from None
    return obj


def _call_factory(spec: str, obj: Any) -> Any:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        required = [
            p
            for p in sig.parameters.values()
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if required:
            raise ConfigurationError(
                f"{spec} needs arguments ({', '.join(p.name for p in required)})",
                hint="name a Flow or a factory that takes no arguments",
            )
    try:
        return obj()
    except FlowcoordError:
        raise
    except Exception as exc:
        raise ConfigurationError(f"calling {spec} failed: {type(exc).__name__}: {exc}") from None


def load_flow(spec: str, name: str | None = None) -> Flow | Workflow:
    """The flow that ``spec`` names: a Flow, a Workflow, a zero-argument factory of a Flow,
    or a FlowRegistry (then ``name`` picks the flow)."""
    obj = load_object(spec)
    if isinstance(obj, FlowRegistry):
        if name is None:
            raise ConfigurationError(
                f"{spec} is a FlowRegistry", hint="name a flow: module:attr of a Flow or factory"
            )
        return obj.build(name)
    if isinstance(obj, Flow | Workflow):
        return obj
    flow = _call_factory(spec, obj) if callable(obj) else obj
    if not isinstance(flow, Flow | Workflow):
        raise ConfigurationError(
            f"{spec} is {type(flow).__name__}, not a flowcoord.Flow or flowcoord.Workflow",
            hint="name a Flow or a @flowcoord.workflow, or a zero-argument function returning one",
        )
    return flow


def load_registry(spec: str) -> FlowRegistry:
    obj = load_object(spec)
    if not isinstance(obj, FlowRegistry) and callable(obj):
        obj = _call_factory(spec, obj)
    if not isinstance(obj, FlowRegistry):
        raise ConfigurationError(
            f"{spec} is {type(obj).__name__}, not a flowcoord.FlowRegistry",
            hint="name a FlowRegistry, or a zero-argument function returning one",
        )
    return obj


def parse_inputs(pairs: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` pairs as typed, by key; converting the values is
    :func:`flowcoord._model._inputs.convert_inputs`'s (by the flow's annotations)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigurationError(
                f"--input {pair!r} is not key=value", hint="e.g. --input size=2 --input name=db-1"
            )
        out[key] = raw
    return out
