"""Tasks and flows: signature inference, provides/rebind/inject, validation errors."""

from __future__ import annotations

from typing import Any

import pytest

import flowcoord as fc


@fc.task(provides="vm")
async def allocate(size: int, zone: str = "a") -> str:
    return f"vm-{size}-{zone}"


def test_requires_inferred_from_signature() -> None:
    assert allocate.requires == ("size",)
    assert allocate.optional == ("zone",)
    assert allocate.provided == ("vm",)
    assert allocate.name == "allocate"


def test_rebind_mapping_and_sequence() -> None:
    t = allocate.with_options(name="a2", rebind={"size": "vm_size"})
    assert t.requires == ("vm_size",)
    t2 = allocate.with_options(name="a3", rebind=["n", "z"])
    assert (t2.requires, t2.optional) == (("n",), ("z",))
    with pytest.raises(fc.errors.InvalidTaskError, match="rebind names 'nope'"):
        allocate.with_options(name="a4", rebind={"nope": "x"})


def test_inject_removes_requirement() -> None:
    t = allocate.with_options(name="a5", inject={"size": 4})
    assert t.requires == ()
    with pytest.raises(fc.errors.InvalidTaskError, match="inject names 'bogus'"):
        allocate.with_options(name="a6", inject={"bogus": 1})


def test_provides_forms() -> None:
    async def f() -> Any:
        return None

    assert fc.task(provides=("a", "b"))(f).provides_kind == "tuple"
    assert fc.task(provides={"b", "a"})(f).provided == ("a", "b")
    with pytest.raises(fc.errors.InvalidTaskError):
        fc.task(provides=("a", "a"))(f)
    with pytest.raises(fc.errors.InvalidTaskError):
        fc.task(provides=3)(f)  # type: ignore[call-overload]


def test_sync_function_and_varargs_are_refused() -> None:
    def sync() -> None:
        return None

    with pytest.raises(fc.errors.InvalidTaskError, match="must be an async def"):
        fc.task(sync)  # type: ignore[arg-type]

    async def star(*args: int) -> None:
        return None

    with pytest.raises(fc.errors.InvalidTaskError, match="by keyword"):
        fc.task(star)


def test_revert_parameters_checked() -> None:
    t = fc.task(allocate.fn)

    async def bad_revert(size: int, unknown: int) -> None:
        return None

    with pytest.raises(fc.errors.InvalidTaskError, match="unknown"):
        t.on_revert(bad_revert)


def test_class_task() -> None:
    class Start(fc.Task):
        provides = "addr"

        async def execute(self, vm: str) -> str:
            return vm + ":ip"

        async def revert(self, vm: str, result: Any) -> None:
            return None

    s = Start()
    assert (s.name, s.requires, s.provided, s.has_revert) == ("Start", ("vm",), ("addr",), True)


@fc.task(provides="x")
async def make_x() -> int:
    return 1


@fc.task(provides="y")
async def x_to_y(x: int) -> int:
    return x + 1


def test_duplicate_names_anywhere_in_tree() -> None:
    flow = fc.Linear("f", make_x, fc.Unordered("inner", make_x.with_options(name="make_x")))
    with pytest.raises(fc.errors.DuplicateTaskError) as info:
        fc.compile_flow(flow)
    assert info.value.tasks == ("make_x",)
    assert "flow 'f'" in str(info.value)


def test_two_providers_is_ambiguous() -> None:
    other = make_x.with_options(name="other_x")
    with pytest.raises(fc.errors.AmbiguousProviderError) as info:
        fc.compile_flow(fc.Unordered("f", make_x, other))
    assert set(info.value.tasks) == {"make_x", "other_x"}
    assert info.value.names == ("x",)


def test_cycle_names_the_cycle() -> None:
    # Linear says y before x, data says x before y.
    with pytest.raises(fc.errors.CycleError) as info:
        fc.compile_flow(fc.Linear("f", x_to_y, make_x))
    assert set(info.value.tasks) == {"make_x", "x_to_y"}


def test_missing_input_names_task_and_input() -> None:
    plan = fc.compile_flow(fc.Linear("f", x_to_y, allocate))
    with pytest.raises(fc.errors.MissingInputError) as info:
        plan.check_inputs({})
    assert info.value.tasks == ("x_to_y", "allocate")
    assert info.value.names == ("x", "size")
    plan.check_inputs({"x": 1, "size": 2})


def test_graph_links_and_data_edges() -> None:
    g = fc.Graph("g", x_to_y, make_x)
    plan = fc.compile_flow(g)
    a, b = plan.by_name["make_x"], plan.by_name["x_to_y"]
    assert a in plan.nodes[b].preds
    with pytest.raises(fc.FlowDefinitionError, match="not an item"):
        g.link(make_x, allocate)


def test_linear_of_unordered_uses_a_barrier_not_n_squared_edges() -> None:
    left = fc.Unordered(
        "l", *(make_x.with_options(name=f"l{i}", provides=f"l{i}") for i in range(50))
    )
    right = fc.Unordered(
        "r", *(make_x.with_options(name=f"r{i}", provides=f"r{i}") for i in range(50))
    )
    plan = fc.compile_flow(fc.Linear("f", left, right))
    assert sum(1 for _ in plan.edges()) == 100


def test_export_dot_and_mermaid() -> None:
    flow = fc.Linear("f", make_x, x_to_y)
    dot = fc.to_dot(flow)
    assert '"make_x" -> "x_to_y";' in dot
    assert dot.startswith('digraph "f"')
    mer = fc.to_mermaid(flow)
    assert mer.splitlines()[0] == "flowchart LR"
    assert "t0 --> t1" in mer


def test_adding_a_non_task_is_a_clear_error() -> None:
    async def plain() -> None:
        return None

    with pytest.raises(fc.FlowDefinitionError, match=r"@flowcoord\.task"):
        fc.Linear("f", plain)  # type: ignore[arg-type]


def test_registry() -> None:
    reg = fc.FlowRegistry()

    @reg.register("a")
    def build() -> fc.Flow:
        return fc.Linear("a", make_x)

    assert isinstance(reg.build("a"), fc.Linear)
    assert "a" in reg
    with pytest.raises(fc.errors.UnknownFlow, match="registered"):
        reg.build("b")
