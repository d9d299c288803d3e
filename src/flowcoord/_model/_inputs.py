"""A flow's inputs as its code declares them, and values converted to what it annotates.

The inputs of a pattern flow are the names its tasks (and retry controllers) take that no
task provides; those of a workflow are its parameters after the context. Each input has the
annotation of the parameter that takes it (the first annotated one when several tasks take
it), or, unannotated, the type of its default when that is a ``bool``.

:func:`convert_inputs` is the one conversion the faces share: the command line passes text
(``-i fail=False``), the HTTP API decoded JSON (``{"qty": "2"}``). A value that does not fit
its annotation, and a name the flow does not take, raise a
:class:`~flowcoord.errors.FlowDefinitionError` naming the input (and, for an unknown name,
the known ones) before anything is journaled. Missing required inputs stay the engine's to
refuse (:class:`~flowcoord.errors.MissingInputError`).

What is converted: ``str``, ``int``, ``float``, ``bool``, ``None``, unions and ``Optional``,
``Literal``, and ``list``/``tuple``/``set``/``dict`` (and their ``typing`` generics, elements
checked) as JSON lists and objects. Anything else (unannotated, ``Any``, a class of the
application's) is taken as JSON when the text parses as JSON, as text otherwise, unchecked.
"""

from __future__ import annotations

import collections.abc as cabc
import inspect
import json
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import FlowDefinitionError
from ._compile import compile_flow
from ._flow import Flow
from ._workflow import Workflow

__all__ = [
    "UNTYPED",
    "FlowInputs",
    "InputSpec",
    "convert_inputs",
    "convert_value",
    "flow_inputs",
    "type_name",
]

#: An input whose parameter has no (usable) annotation.
UNTYPED: Any = inspect.Parameter.empty

_TRUE = frozenset({"true", "yes", "on", "1", "y"})
_FALSE = frozenset({"false", "no", "off", "0", "n"})
_NULL = frozenset({"null", "none"})
_SEQUENCES: tuple[Any, ...] = (
    list,
    tuple,
    set,
    frozenset,
    cabc.Sequence,
    cabc.MutableSequence,
    cabc.Set,
    cabc.MutableSet,
    cabc.Collection,
    cabc.Iterable,
)
_MAPPINGS: tuple[Any, ...] = (dict, cabc.Mapping, cabc.MutableMapping)
_BY_NAME: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "None": type(None),
    "list": list,
    "dict": dict,
    "Any": Any,
}


@dataclass(frozen=True, slots=True)
class InputSpec:
    """One input of a flow: its name, annotation (:data:`UNTYPED` when none), whether it is
    required, and who takes it (``"task 'add'"``, ``"the workflow"``)."""

    name: str
    annotation: Any
    required: bool
    takers: tuple[str, ...]

    @property
    def type_name(self) -> str:
        """The annotation as written in code (``"int"``, ``"bool | None"``), ``""`` if none."""
        return "" if self.annotation is UNTYPED else type_name(self.annotation)

    def where(self) -> str:
        """``"task 'add' takes size: int"``: where the input's type comes from."""
        taker = self.takers[0] if self.takers else "the flow"
        shown = f"{self.name}: {self.type_name}" if self.type_name else self.name
        return f"{taker} takes {shown}"


@dataclass(frozen=True, slots=True)
class FlowInputs:
    """The inputs of a flow by name; ``open``: it also takes names it does not declare (a
    workflow with ``**kwargs``)."""

    flow: str
    specs: dict[str, InputSpec]
    open: bool = False

    @property
    def required(self) -> list[str]:
        return [n for n, s in self.specs.items() if s.required]


class _Mismatch(ValueError):
    """A value does not fit an annotation; the message says what was expected."""


def flow_inputs(flow: Flow | Workflow) -> FlowInputs:
    """What ``flow`` takes as inputs (compiles a pattern flow: raises what compiling does)."""
    if isinstance(flow, Workflow):
        return _workflow_inputs(flow)
    plan = compile_flow(flow)
    specs: dict[str, InputSpec] = {}
    for node in plan.nodes:
        t = node.task
        if t is None:
            continue
        fn = t._execute_fn()  # the function whose parameters the task takes
        hints = _hints(fn)
        params = _parameters(fn)
        pairs = [(p, s, True) for p, s in t.required_args]
        pairs += [(p, s, False) for p, s in t.optional_args]
        for param, store, required in pairs:
            if store in plan.scope_providers or plan.providers.get(store, node.index) != (
                node.index
            ):
                continue  # a task (or retry controller) provides it
            ann = hints.get(param, UNTYPED)
            if ann is UNTYPED and param in params:
                default = params[param].default
                if isinstance(default, bool):
                    ann = bool
            _merge(specs, store, ann, required, f"task {node.name!r}")
    for scope in plan.scopes:
        for name in scope.retry.requires:
            if name not in plan.providers:
                _merge(specs, name, UNTYPED, True, f"the retry of {scope.name!r}")
    return FlowInputs(flow.name, specs)


def convert_inputs(
    flow: Flow | Workflow | FlowInputs, values: Mapping[str, Any], *, text: bool = False
) -> dict[str, Any]:
    """``values`` converted to the annotations of ``flow``'s inputs: ``text=True`` for
    strings typed by a person (``"False"``, ``"2"``, ``"[1, 2]"``), else decoded JSON.

    Raises :class:`~flowcoord.errors.FlowDefinitionError` (``names``: the input) for a value
    that does not fit, or for names the flow does not take (listing those it does).
    """
    inputs = flow if isinstance(flow, FlowInputs) else flow_inputs(flow)
    unknown = sorted(n for n in values if n not in inputs.specs)
    if unknown and not inputs.open:
        known = ", ".join(sorted(inputs.specs)) or "none"
        plural = "s" if len(unknown) > 1 else ""
        raise FlowDefinitionError(
            f"unknown input{plural} {', '.join(map(repr, unknown))}; its inputs are: {known}",
            flow=inputs.flow,
            names=unknown,
        )
    out: dict[str, Any] = {}
    for name, value in values.items():
        spec = inputs.specs.get(name)
        ann = spec.annotation if spec is not None else UNTYPED
        try:
            out[name] = convert_value(value, ann, text=text)
        except _Mismatch as exc:
            where = f" ({spec.where()})" if spec is not None and spec.type_name else ""
            raise FlowDefinitionError(
                f"input {name!r}: {_shown(value)} is not {exc}{where}",
                flow=inputs.flow,
                names=[name],
            ) from None
    return out


def convert_value(value: Any, annotation: Any, *, text: bool = False) -> Any:
    """``value`` (a person's text with ``text=True``, else decoded JSON) as ``annotation``
    wants it; raises ``ValueError`` (its message: what was expected) when it does not fit."""
    try:
        return _from_text(value, annotation) if text else _from_json(value, annotation)
    except RecursionError:
        raise _Mismatch("a value of a reasonable depth") from None


# -- introspection ------------------------------------------------------------------------------


def _workflow_inputs(wf: Workflow) -> FlowInputs:
    params = list(inspect.signature(wf.fn).parameters.values())[1:]
    hints = _hints(wf.fn)
    specs: dict[str, InputSpec] = {}
    for p in params:
        if p.kind is p.VAR_KEYWORD:
            continue
        ann = hints.get(p.name, UNTYPED)
        if ann is UNTYPED and isinstance(p.default, bool):
            ann = bool
        specs[p.name] = InputSpec(p.name, ann, p.default is p.empty, ("the workflow",))
    return FlowInputs(wf.name, specs, open=wf.takes_any)


def _parameters(fn: Callable[..., Any]) -> Mapping[str, inspect.Parameter]:
    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """The parameters' annotations, resolved (``from __future__ import annotations`` too); an
    annotation that does not resolve is read by its name when it is a builtin's, else
    dropped."""
    fn = inspect.unwrap(getattr(fn, "__func__", fn))
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = {}
        raw = getattr(fn, "__annotations__", None) or {}
        glb = getattr(fn, "__globals__", {})
        for key, ann in raw.items():
            if isinstance(ann, str):  # resolved one at a time: one that fails drops alone
                holder = type("_One", (), {"__annotations__": {key: ann}})
                try:
                    ann = typing.get_type_hints(holder, globalns=glb)[key]
                except Exception:
                    ann = _BY_NAME.get(ann.strip(), UNTYPED)
            hints[key] = ann
    hints.pop("return", None)
    return {k: _plain(v) for k, v in hints.items()}


def _plain(ann: Any) -> Any:
    """``Annotated[T, ...]`` as ``T``; ``Any`` and ``object`` as untyped."""
    if typing.get_origin(ann) is typing.Annotated:
        ann = typing.get_args(ann)[0]
    if ann is Any or ann is object or ann is inspect.Parameter.empty:
        return UNTYPED
    return ann


def _merge(specs: dict[str, InputSpec], name: str, ann: Any, required: bool, taker: str) -> None:
    old = specs.get(name)
    if old is None:
        specs[name] = InputSpec(name, ann, required, (taker,))
        return
    takers = (*old.takers, taker)
    if old.annotation is UNTYPED and ann is not UNTYPED:  # the first annotated taker's type
        takers = (taker, *old.takers)
    specs[name] = InputSpec(
        name,
        old.annotation if old.annotation is not UNTYPED else ann,
        old.required or required,
        takers,
    )


def type_name(ann: Any) -> str:
    """An annotation as code writes it: ``int``, ``list[int]``, ``str | None``."""
    if ann is type(None) or ann is None:
        return "None"
    origin = typing.get_origin(ann)
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(type_name(a) for a in typing.get_args(ann))
    if origin is typing.Literal:
        return f"Literal[{', '.join(map(repr, typing.get_args(ann)))}]"
    if origin is not None:
        args = typing.get_args(ann)
        base = getattr(origin, "__name__", str(origin))
        return f"{base}[{', '.join(type_name(a) for a in args)}]" if args else base
    if isinstance(ann, type):
        return ann.__name__
    return str(ann).replace("typing.", "")


# -- conversion ---------------------------------------------------------------------------------


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _members(ann: Any) -> tuple[Any, ...] | None:
    origin = typing.get_origin(ann)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(ann)
    return None


def _what(ann: Any) -> str:
    """What a value of ``ann`` is, for a message: ``an integer``, ``one of 'a', 'b'``."""
    if ann is bool:
        return "a boolean (true/false, yes/no, 1/0)"
    if ann is int:
        return "an integer"
    if ann is float:
        return "a number"
    if ann is str:
        return "a string"
    if ann is type(None):
        return "null"
    origin = typing.get_origin(ann)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(ann)))
    if _container(ann) == "seq":
        return f"a JSON list ({type_name(ann)})"
    if _container(ann) == "map":
        return f"a JSON object ({type_name(ann)})"
    return f"a {type_name(ann)}"


def _container(ann: Any) -> str | None:
    base = typing.get_origin(ann) or ann
    if any(base is s for s in _SEQUENCES):
        return "seq"
    if any(base is m for m in _MAPPINGS):
        return "map"
    return None


def _from_text(text: Any, ann: Any) -> Any:
    if not isinstance(text, str):
        return _from_json(text, ann)
    if ann is UNTYPED:
        return _json_or_text(text)
    members = _members(ann)
    if members is not None:
        return _union(text, ann, members, _from_text)
    if ann is str:
        if len(text) >= 2 and text[0] == text[-1] == '"':  # a JSON string: "7" is 7's text
            decoded = _json_or_text(text)
            if isinstance(decoded, str):
                return decoded
        return text
    if ann is bool:
        word = text.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise _Mismatch(_what(ann))
    if ann is int:
        try:
            return int(text.strip())
        except ValueError:
            raise _Mismatch(_what(ann)) from None
    if ann is float:
        try:
            number = float(text.strip())
        except ValueError:
            raise _Mismatch(_what(ann)) from None
        if not math.isfinite(number):
            raise _Mismatch("a finite number")
        return number
    if ann is type(None):
        if text.strip().lower() in _NULL:
            return None
        raise _Mismatch(_what(ann))
    if typing.get_origin(ann) is typing.Literal:
        for choice in typing.get_args(ann):
            try:
                if _from_text(text, type(choice)) == choice:
                    return choice
            except _Mismatch:
                continue
        raise _Mismatch(_what(ann))
    if _container(ann) is not None:
        try:
            decoded = json.loads(text)
        except ValueError:
            raise _Mismatch(_what(ann)) from None
        return _from_json(decoded, ann)
    return _json_or_text(text)  # a type of the application's: unchecked


def _union(value: Any, ann: Any, members: tuple[Any, ...], convert: Any) -> Any:
    if type(None) in members and (
        value is None or (isinstance(value, str) and value.strip().lower() in _NULL)
    ):
        return None
    if convert is _from_json or not isinstance(value, str):
        for m in members:  # a value that is already of a member type stays as it is
            if _exact(value, m):
                return value
    ordered = [m for m in members if m is not str and m is not type(None)]
    if str in members:
        ordered.append(str)
    for m in ordered:
        try:
            return convert(value, m)
        except _Mismatch:
            continue
    raise _Mismatch(" or ".join(_what(m) for m in members))


def _exact(value: Any, ann: Any) -> bool:
    if ann is UNTYPED:
        return True
    if ann is bool:
        return isinstance(value, bool)
    if ann is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if ann is float:
        return isinstance(value, float)
    if ann in (str, type(None)):
        return isinstance(value, ann)
    return False


def _from_json(value: Any, ann: Any) -> Any:
    if ann is UNTYPED:
        return value
    members = _members(ann)
    if members is not None:
        return _union(value, ann, members, _from_json)
    if ann is str:
        if isinstance(value, str):
            return value
        raise _Mismatch(_what(ann))
    if ann in (bool, int, float, type(None)) and isinstance(value, str):
        return _from_text(value, ann)  # "2" for an int, "false" for a bool
    if ann is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch(_what(ann))
    if ann is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _Mismatch(_what(ann))
    if ann is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise _Mismatch("a finite number")
            return float(value)
        raise _Mismatch(_what(ann))
    if ann is type(None):
        if value is None:
            return None
        raise _Mismatch(_what(ann))
    if typing.get_origin(ann) is typing.Literal:
        choices = typing.get_args(ann)
        for choice in choices:
            if value == choice and type(value) is type(choice):
                return choice
        if isinstance(value, str):
            return _from_text(value, ann)
        raise _Mismatch(_what(ann))
    kind = _container(ann)
    if kind is not None:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise _Mismatch(_what(ann)) from None
        try:
            return _container_from_json(value, ann, kind)
        except _Mismatch:
            raise _Mismatch(_what(ann)) from None
    return value  # a type of the application's: unchecked


def _container_from_json(value: Any, ann: Any, kind: str) -> Any:
    args = typing.get_args(ann)
    if kind == "seq":
        if not isinstance(value, list | tuple):
            raise _Mismatch(_what(ann))
        if typing.get_origin(ann) is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise _Mismatch(_what(ann))
            return [_from_json(v, _plain(a)) for v, a in zip(value, args, strict=True)]
        item = _plain(args[0]) if args else UNTYPED
        return [_from_json(v, item) for v in value]
    if not isinstance(value, dict):
        raise _Mismatch(_what(ann))
    vtype = _plain(args[1]) if len(args) == 2 else UNTYPED
    return {k: _from_json(v, vtype) for k, v in value.items()}
