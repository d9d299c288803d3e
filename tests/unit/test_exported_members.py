"""The public API is exactly what ``__all__`` says."""

from __future__ import annotations

import builtins
import importlib
import importlib.metadata
import inspect
import re
import subprocess
import sys

import pytest

import flowcoord
import flowcoord.coordination
import flowcoord.journal

PUBLIC = ("flowcoord", "flowcoord.journal", "flowcoord.coordination")


@pytest.mark.parametrize("module", PUBLIC)
def test_all_matches_public_names(module: str) -> None:
    mod = importlib.import_module(module)
    # "@py_builtins" & co.: pytest rewrites the asserts of a package that ships a pytest plugin
    public = {n for n in dir(mod) if n[0] not in "_@"}
    # public sub-packages and submodules imported as a side effect are not names of their own
    public -= {"errors", "journal", "coordination", "aiohttp", "testing", "annotations"}
    public -= {"otel", "prometheus"}  # public submodules, imported by the tests that use them
    assert set(mod.__all__) == public
    assert sorted(mod.__all__) == sorted(set(mod.__all__))


def test_the_top_level_is_what_a_flow_author_needs() -> None:
    """Small on purpose: the backend contract, entries, job boards and ZooKeeper live in
    flowcoord.journal and flowcoord.coordination; every error in flowcoord.errors."""
    assert len(flowcoord.__all__) <= 45
    assert flowcoord.__all__ == sorted(flowcoord.__all__)
    for name in ("JournalBackend", "Entry", "replay", "Conductor", "ZooKeeperSession"):
        assert not hasattr(flowcoord, name), name


@pytest.mark.parametrize("module", PUBLIC)
def test_public_names_show_their_public_path(module: str) -> None:
    """``__module__`` is the path a name is documented and imported at, never a private
    module (reprs, tracebacks and the API reference show it)."""
    mod = importlib.import_module(module)
    for name in mod.__all__:
        value = getattr(mod, name)
        if isinstance(value, type) or inspect.isfunction(value):
            assert value.__module__ in (*PUBLIC, "flowcoord.errors"), f"{module}.{name}"
            owner = importlib.import_module(value.__module__)
            assert getattr(owner, name) is value


def test_errors_tree() -> None:
    for name in flowcoord.errors.__all__:
        assert issubclass(getattr(flowcoord.errors, name), flowcoord.FlowcoordError)
    for name in flowcoord.__all__:
        if name in flowcoord.errors.__all__:
            assert getattr(flowcoord, name) is getattr(flowcoord.errors, name)
    assert issubclass(flowcoord.FlowDefinitionError, ValueError)
    assert issubclass(flowcoord.ConfigurationError, ValueError)


def test_the_error_tree_drawn_in_errors_is_true() -> None:
    """Every class in the drawing of ``flowcoord.errors`` is there, under the parent drawn,
    with the extra bases noted ("also ValueError"), and every error is drawn."""
    doc = flowcoord.errors.__doc__ or ""
    known = {*flowcoord.errors.__all__, "FlowcoordError"}
    drawn: dict[str, str] = {}
    parents: list[str] = []
    root = None
    for line in doc.splitlines():
        m = re.match(r"^[\s│├└─]*([A-Z]\w+)(?: \(also (\w+)\))?", line)
        if not m or m.group(1) not in known:
            continue
        col = m.start(1)
        root = col if root is None else root
        depth = (col - root) // 4
        del parents[depth:]
        name = m.group(1)
        if parents:
            drawn[name] = parents[-1]
        parents.append(name)
        if m.group(2):
            assert issubclass(getattr(flowcoord.errors, name), getattr(builtins, m.group(2)))
    assert set(drawn) | {"FlowcoordError"} == set(flowcoord.errors.__all__) | {"FlowcoordError"}
    for name, parent in drawn.items():
        assert getattr(flowcoord.errors, parent) in getattr(flowcoord.errors, name).__bases__, (
            f"{name} is drawn under {parent}"
        )


def test_aiozk_is_the_version_flowcoord_patches() -> None:
    """_coord/_zk_fixes.py subclasses aiozk 0.32's connection internals: another minor
    version must be checked (and the pin in pyproject.toml moved) before it is used."""
    version = importlib.metadata.version("aiozk")
    assert version.split(".")[:2] == ["0", "32"], (
        f"aiozk {version} is installed; flowcoord's fixes were written for 0.32 "
        "(src/flowcoord/_coord/_zk_fixes.py)"
    )


def test_import_flowcoord_loads_no_driver() -> None:
    """asyncpg and aiozk load with the first use of what needs them, not with the package."""
    code = (
        "import sys, flowcoord\n"
        "print(sorted(m for m in ('asyncpg', 'aiozk', 'aiohttp') if m in sys.modules))\n"
        "flowcoord.PostgresJournal, flowcoord.coordination.ZooKeeperSession\n"
        "flowcoord.coordination.run_worker\n"
        "print(sorted(m for m in ('asyncpg', 'aiozk') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()
    assert out == ["[]", "['aiozk', 'asyncpg']"]
