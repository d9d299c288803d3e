"""The public API is exactly what ``__all__`` says."""

from __future__ import annotations

import flowcoord


def test_all_matches_public_names() -> None:
    public = {n for n in dir(flowcoord) if not n.startswith("_")}
    # submodules imported as a side effect are not API
    public -= {"errors", "aiohttp", "testing", "annotations"}
    assert set(flowcoord.__all__) == public
    assert flowcoord.__all__ == sorted(flowcoord.__all__)


def test_errors_tree() -> None:
    for name in flowcoord.errors.__all__:
        assert issubclass(getattr(flowcoord, name), flowcoord.FlowcoordError)
    assert issubclass(flowcoord.FlowDefinitionError, ValueError)
    assert issubclass(flowcoord.ConfigurationError, ValueError)
