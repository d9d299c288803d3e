"""One flow-id rule at every entry point, checked before anything is written."""

from __future__ import annotations

import pytest

import flowcoord as fc
from flowcoord._ids import FLOW_ID_RULE, check_flow_id, is_flow_id

pytestmark = pytest.mark.anyio

BAD = ["", "../../x", "a b", "x" * 5000, "abc\n", "-lead", ".hidden", "a/b", "é"]
GOOD = ["a", "A1", "flow-1.2_3:4@5", "x" * 128, "0abc"]


@pytest.mark.parametrize("value", GOOD)
def test_good_ids(value: str) -> None:
    assert is_flow_id(value)
    assert check_flow_id(value) == value


@pytest.mark.parametrize("value", [*BAD, "x" * 129, None, 7])
def test_bad_ids(value: object) -> None:
    assert not is_flow_id(value)
    with pytest.raises(fc.ConfigurationError, match="invalid flow id") as info:
        check_flow_id(value)
    assert FLOW_ID_RULE in str(info.value)


def _flow() -> fc.Flow:
    @fc.task
    async def one() -> None:
        pass

    return fc.Linear("ids", one)


@pytest.mark.parametrize("value", BAD)
async def test_the_engine_refuses_bad_ids_before_writing(value: str) -> None:
    async with fc.Engine() as engine:
        with pytest.raises(fc.ConfigurationError, match="invalid flow id"):
            await engine.run(_flow(), flow_id=value)
        with pytest.raises(fc.ConfigurationError, match="invalid flow id"):
            await engine.start(_flow(), flow_id=value)
        await engine.run(_flow(), flow_id="src")
        with pytest.raises(fc.ConfigurationError, match="invalid new flow id"):
            await engine.fork(_flow(), "src", flow_id=value)
        assert [r.flow_id for r in await engine.backend.list_flows()] == ["src"]
