"""A flow's inputs, known from its tasks' or workflow's signatures, and values converted to
their annotations: text from the command line, decoded JSON from the HTTP API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Optional, Union

import pytest

import flowcoord as fc
from flowcoord._model._inputs import (
    UNTYPED,
    FlowInputs,
    convert_inputs,
    convert_value,
    flow_inputs,
    type_name,
)
from flowcoord.errors import FlowDefinitionError

if TYPE_CHECKING:
    from collections.abc import Sequence


@fc.task(provides="vm")
async def allocate(size: int, zone: str = "a") -> str:
    return f"vm{size}{zone}"


@fc.task(provides="ip")
async def boot(vm: str, fast: bool = False, retries: int | None = None) -> str:
    return vm


@fc.task
async def tag(  # type: ignore[no-untyped-def]
    vm: str, labels: list[str], extra: dict[str, int] | None = None, dry=False
) -> None:
    return None


@fc.task(rebind={"n": "count"}, inject={"secret": "s"})
async def scale(n: float, secret: str, mode: Literal["up", "down"] = "up") -> None:
    return None


@fc.task
async def untyped(note, size) -> None:  # type: ignore[no-untyped-def]
    return None


class Publish(fc.Task):
    async def execute(self, ip: str, ttl: int = 60) -> None:
        return None


def _flow() -> fc.Flow:
    return fc.Linear("provision", allocate, boot, tag, scale, untyped, Publish())


@fc.workflow
async def wf(ctx: fc.Context, n: int, name: str = "x", on: bool = True) -> int:
    return n


@fc.workflow
async def wf_any(ctx: fc.Context, n: int, **rest: Any) -> int:
    return n


def _raises(flow: Any, values: dict[str, Any], fragment: str, *, text: bool = True) -> None:
    with pytest.raises(FlowDefinitionError) as info:
        convert_inputs(flow, values, text=text)
    assert fragment in str(info.value), str(info.value)
    assert info.value.names


# -- what a flow takes -------------------------------------------------------------------------


def test_a_pattern_flows_inputs_are_what_its_tasks_take_and_no_task_provides() -> None:
    inputs = flow_inputs(_flow())
    assert inputs.flow == "provision"
    assert not inputs.open
    specs = inputs.specs
    # vm and ip are provided by tasks; secret is injected; n is read from the store as count
    assert set(specs) == {
        "size", "zone", "fast", "retries", "labels", "extra", "dry", "count", "mode", "note",
        "ttl",
    }  # fmt: skip
    assert inputs.required == ["size", "labels", "count", "note"]
    assert specs["size"].annotation is int
    assert specs["size"].takers == ("task 'allocate'", "task 'untyped'")
    assert specs["count"].annotation is float  # the parameter's type, under the store name
    assert specs["dry"].annotation is bool  # unannotated, with a bool default
    assert specs["note"].annotation is UNTYPED
    assert specs["note"].type_name == ""
    assert specs["ttl"].annotation is int  # a Task subclass's execute()
    assert specs["retries"].type_name == "int | None"
    assert specs["extra"].type_name == "dict[str, int] | None"
    assert specs["mode"].type_name == "Literal['up', 'down']"
    assert specs["size"].where() == "task 'allocate' takes size: int"


def test_an_input_taken_by_several_tasks_has_the_first_annotated_takers_type() -> None:
    @fc.task(provides="a")
    async def first(size) -> int:  # type: ignore[no-untyped-def]
        return 1

    @fc.task
    async def second(a: int, size: int) -> None:
        return None

    spec = flow_inputs(fc.Unordered("u", first, second)).specs["size"]
    assert spec.annotation is int
    assert spec.takers == ("task 'second'", "task 'first'")
    assert spec.required


def test_a_retry_controllers_required_name_is_an_input() -> None:
    @fc.task
    async def use(value: int) -> None:
        return None

    flow = fc.Linear("r", use, retry=fc.ParameterizedForEach(requires="values"))
    specs = flow_inputs(flow).specs
    assert set(specs) == {"values"}  # value is provided by the controller
    assert specs["values"].required
    assert specs["values"].annotation is UNTYPED


def test_a_workflows_inputs_are_its_parameters_after_the_context() -> None:
    inputs = flow_inputs(wf)
    assert (inputs.flow, inputs.open, inputs.required) == ("wf", False, ["n"])
    assert [(s.name, s.type_name) for s in inputs.specs.values()] == [
        ("n", "int"),
        ("name", "str"),
        ("on", "bool"),
    ]
    assert flow_inputs(wf_any).open


def test_annotations_that_do_not_resolve_fall_back_to_builtin_names_or_none() -> None:
    async def fn(a: int, b: NoSuchType, c: str) -> None:  # type: ignore[name-defined]  # noqa: F821
        return None

    specs = flow_inputs(fc.Linear("f", fc.task(fn))).specs
    assert (specs["a"].annotation, specs["b"].annotation, specs["c"].annotation) == (
        int,
        UNTYPED,
        str,
    )


# -- text: what a person types ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ann", "value"),
    [
        ("False", bool, False),
        ("false", bool, False),
        ("no", bool, False),
        ("0", bool, False),
        ("True", bool, True),
        ("yes", bool, True),
        ("on", bool, True),
        ("2", int, 2),
        (" -7 ", int, -7),
        ("2.5", float, 2.5),
        ("3", float, 3.0),
        ("hello world", str, "hello world"),
        ("007", str, "007"),
        ('"7"', str, "7"),  # a JSON string literal is read as one
        ("null", Optional[int], None),  # noqa: UP045 - the typing spelling too
        ("None", int | None, None),
        ("5", int | None, 5),
        ("5", Union[int, str], 5),  # noqa: UP007
        ("abc", int | str, "abc"),
        ("5", str | int, 5),  # str is the last resort
        ("down", Literal["up", "down"], "down"),
        ("2", Literal[1, 2], 2),
        ("[1, 2]", list[int], [1, 2]),
        ('["a"]', tuple[str, ...], ["a"]),  # JSON lists: what the journal can hold
        ("[1, 2]", set[int], [1, 2]),
        ('{"a": 1}', dict[str, int], {"a": 1}),
        ('{"a": 1}', dict, {"a": 1}),
        ("[1, 2]", UNTYPED, [1, 2]),  # untyped: JSON when it parses
        ("hello", UNTYPED, "hello"),  # else text
        ("2", UNTYPED, 2),
        ("2", Any, 2),
        ("3", Annotated[int, "meta"], 3),
    ],
)
def test_text_is_converted_to_the_annotation(text: str, ann: Any, value: Any) -> None:
    assert convert_value(text, ann, text=True) == value
    assert type(convert_value(text, ann, text=True)) is type(value)


@pytest.mark.parametrize(
    ("text", "ann", "expected"),
    [
        ("abc", int, "an integer"),
        ("2.5", int, "an integer"),
        ("maybe", bool, "a boolean (true/false, yes/no, 1/0)"),
        ("x", float, "a number"),
        ("nan", float, "a finite number"),
        ("inf", float, "a finite number"),
        ("sideways", Literal["up", "down"], "one of 'up', 'down'"),
        ("[1, 2", list[int], "a JSON list (list[int])"),
        ('[1, "x"]', list[int], "a JSON list (list[int])"),
        ('{"a": 1}', list[int], "a JSON list (list[int])"),
        ("[1]", dict[str, int], "a JSON object (dict[str, int])"),
        ("x", int | None, "an integer or null"),
    ],
)
def test_text_that_does_not_fit_says_what_was_expected(text: str, ann: Any, expected: str) -> None:
    with pytest.raises(ValueError) as info:
        convert_value(text, ann, text=True)
    assert str(info.value) == expected


def test_convert_inputs_converts_a_flows_inputs_by_their_annotations() -> None:
    raw = {"size": "2", "fast": "False", "labels": '["web"]', "count": "1.5", "dry": "yes"}
    raw |= {"note": "hello world", "mode": "down", "retries": "null", "ttl": "30"}
    assert convert_inputs(_flow(), raw, text=True) == {
        "size": 2, "fast": False, "labels": ["web"], "count": 1.5, "dry": True,
        "note": "hello world", "mode": "down", "retries": None, "ttl": 30,
    }  # fmt: skip
    assert convert_inputs(wf, {"n": "3", "on": "off"}, text=True) == {"n": 3, "on": False}


def test_a_value_that_does_not_fit_names_the_input_and_its_type() -> None:
    _raises(
        _flow(),
        {"size": "abc"},
        "flow 'provision': input 'size': 'abc' is not an integer (task 'allocate' takes size: int)",
    )
    _raises(wf, {"n": "two"}, "input 'n': 'two' is not an integer (the workflow takes n: int)")
    _raises(_flow(), {"fast": "False!"}, "input 'fast': 'False!' is not a boolean")


def test_unknown_inputs_are_refused_with_the_known_names() -> None:
    _raises(
        _flow(),
        {"size": "1", "vm": "x", "nope": "1"},
        "unknown inputs 'nope', 'vm'; its inputs are: count, dry, extra, fast, labels, mode, "
        "note, retries, size, ttl, zone",
    )
    _raises(wf, {"n": "1", "nme": "x"}, "flow 'wf': unknown input 'nme'; its inputs are: n,")
    # a workflow taking **kwargs takes any name (unconverted: JSON, else text)
    assert convert_inputs(wf_any, {"n": "1", "x": "[1]", "y": "a"}, text=True) == {
        "n": 1,
        "x": [1],
        "y": "a",
    }


def test_missing_inputs_are_left_to_the_engine() -> None:
    assert convert_inputs(_flow(), {}, text=True) == {}


def test_flow_inputs_can_be_computed_once_and_reused() -> None:
    inputs = flow_inputs(_flow())
    assert isinstance(inputs, FlowInputs)
    assert convert_inputs(inputs, {"size": "4"}, text=True) == {"size": 4}


# -- JSON: what the HTTP API decodes ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ann", "expected"),
    [
        (2, int, 2),
        ("2", int, 2),  # a string that reads as the type is taken
        (2.0, int, 2),
        (False, bool, False),
        ("false", bool, False),
        (2, float, 2.0),
        ("x", str, "x"),
        (None, int | None, None),
        (3, int | str, 3),
        ("3", int | str, "3"),  # already a member's type: kept
        ([1, "2"], list[int], [1, 2]),
        ((1, 2), tuple[int, int], [1, 2]),
        ({"a": "1"}, dict[str, int], {"a": 1}),
        ({"any": [1]}, UNTYPED, {"any": [1]}),
        ("up", Literal["up", "down"], "up"),
    ],
)
def test_json_values_are_checked_and_converted(value: Any, ann: Any, expected: Any) -> None:
    assert convert_value(value, ann) == expected


@pytest.mark.parametrize(
    ("value", "ann"),
    [
        ("two", int),
        (True, int),  # a bool is not an integer here
        (2.5, int),
        (1, bool),
        (2, str),
        ([1], str),
        ("x", float),
        (1, list[int]),
        (["x"], list[int]),
        ([1, 2, 3], tuple[int, int]),
        ("down!", Literal["up", "down"]),
        (1, type(None)),
    ],
)
def test_json_values_that_do_not_fit_are_refused(value: Any, ann: Any) -> None:
    with pytest.raises(ValueError):
        convert_value(value, ann)


def test_json_inputs_of_the_wrong_type_name_the_input_not_a_repeated_string() -> None:
    # {"qty": "two"} for qty: int is an error naming the input, never "twotwo"
    @fc.task(provides="total")
    async def order(qty: int) -> int:
        return qty * 2

    _raises(
        fc.Linear("shop", order),
        {"qty": "two"},
        "input 'qty': 'two' is not an integer (task 'order' takes qty: int)",
        text=False,
    )
    assert convert_inputs(fc.Linear("shop", order), {"qty": "2"}) == {"qty": 2}


def test_type_names_read_as_code() -> None:
    names: Sequence[tuple[Any, str]] = [
        (int, "int"),
        (list[int], "list[int]"),
        (int | None, "int | None"),
        (Optional[str], "str | None"),  # noqa: UP045
        (dict[str, list[int]], "dict[str, list[int]]"),
        (type(None), "None"),
    ]
    for ann, name in names:
        assert type_name(ann) == name
