"""The public API is exactly what ``__all__`` says."""

from __future__ import annotations

import flowcoord


def test_all_matches_public_names() -> None:
    # "@py_builtins" & co.: pytest rewrites the asserts of a package that ships a pytest plugin
    public = {n for n in dir(flowcoord) if n[0] not in "_@"}
    # submodules imported as a side effect are not API
    public -= {"errors", "aiohttp", "testing", "annotations"}
    assert set(flowcoord.__all__) == public
    assert flowcoord.__all__ == sorted(flowcoord.__all__)


def test_errors_tree() -> None:
    for name in flowcoord.errors.__all__:
        assert issubclass(getattr(flowcoord, name), flowcoord.FlowcoordError)
    assert issubclass(flowcoord.FlowDefinitionError, ValueError)
    assert issubclass(flowcoord.ConfigurationError, ValueError)
