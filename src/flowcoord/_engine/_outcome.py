"""The error a failed, reverted or cancelled run raises."""

from __future__ import annotations

from .._failure import Failure
from .._model._compile import Plan
from ..errors import FlowCancelled, FlowFailed, RevertFailed, TaskFailed

__all__ = ["flow_error"]


def flow_error(
    plan: Plan,
    flow_id: str,
    failures: dict[int, Failure],
    revert_failures: dict[int, Failure],
    *,
    cancelled: bool,
) -> BaseException:
    """The original exception when one task failed and its flow was reverted; a
    :class:`FlowFailed` group of them (and of the revert failures) otherwise;
    :class:`FlowCancelled` for a cancel. After a resume a failure's exception is gone: its
    journaled record stands in as :class:`TaskFailed`."""
    nodes = plan.nodes
    if cancelled:
        return FlowCancelled(
            f"flow {flow_id} ({plan.flow.name!r}) was cancelled"
            + ("" if not revert_failures else "; some reverts failed"),
            flow_id=flow_id,
        )
    originals: list[Exception] = []
    for i, f in failures.items():
        exc = f.exception
        if isinstance(exc, Exception):
            originals.append(exc)
        else:
            originals.append(TaskFailed(f, flow_id=flow_id, task=nodes[i].name))
    for i, f in revert_failures.items():
        err = RevertFailed(f, flow_id=flow_id, task=nodes[i].name)
        err.__cause__ = f.exception
        originals.append(err)
    if len(originals) == 1 and not revert_failures:
        exc = originals[0]
        ((i, _),) = failures.items()
        exc.add_note(
            f"flowcoord: task {nodes[i].name!r} of flow {flow_id} failed; the flow was reverted"
        )
        return exc
    if not originals:
        return FlowCancelled(f"flow {flow_id} was reverted", flow_id=flow_id)
    return FlowFailed(
        f"flow {flow_id} ({plan.flow.name!r}) failed",
        originals,
        flow_id=flow_id,
        failures=((nodes[i].name, f) for i, f in failures.items()),
        revert_failures=((nodes[i].name, f) for i, f in revert_failures.items()),
    )
