"""Taking a flow over by hand (an operator's resume or cancel), minding the job board.

:meth:`Engine.take_over <flowcoord.Engine.take_over>` is the journal side: it fences the
journal with the next token, so whoever wrote to the flow before (dead, or alive and stale)
can never write to it again. That is right for a flow whose owner died, and wrong for one a
live conductor is running: the take-over would cut a healthy run short. :func:`take_over`
asks the board first. The CLI's ``flows resume|cancel --zk`` and the HTTP API's
``resume``/``cancel`` (with a board) go through it.
"""

from __future__ import annotations

import structlog

from .._engine._engine import Engine, FlowHandle
from .._ids import check_flow_id
from .._model._flow import Flow
from .._model._workflow import Workflow
from .._states import is_finished
from ..errors import FlowOwned
from ._contract import JobBoard

__all__ = ["take_over"]

log = structlog.get_logger("flowcoord.coordination")


async def take_over(
    engine: Engine,
    flow: Flow | Workflow,
    flow_id: str,
    *,
    board: JobBoard | None,
    cancel: bool = False,
    force: bool = False,
) -> FlowHandle:
    """Take the journaled, unfinished flow ``flow_id`` over on ``engine`` and resume it (or,
    with ``cancel``, cancel it), unless a live owner holds it on ``board``.

    When a job of the flow is claimed on ``board`` by a live member (its claim's session is
    alive), raises :class:`~flowcoord.errors.FlowOwned` naming that member, and nothing is
    written. ``force=True`` takes the flow over all the same: the journal is fenced, so the
    owner's next journal write fails with :class:`~flowcoord.OwnershipLost` and its run
    stops. With no live claim, or with ``board=None`` (nothing to consult: the journal fence
    alone, which is all :meth:`Engine.take_over <flowcoord.Engine.take_over>` does), the
    take-over goes ahead.

    The board is consulted only for a journaled, unfinished flow (a missing or finished one
    is refused as ``Engine.take_over`` refuses it, claimed or not), once
    (:meth:`JobBoard.claimed_job`: O(claims) reads). The answer is a snapshot, and that is
    safe: a conductor that claims the job just after it fences the journal with its own,
    newer token, and only the newest token writes. Raises what ``Engine.take_over`` raises
    (:class:`~flowcoord.errors.FlowNotFound`, :class:`~flowcoord.errors.FlowFinished`,
    :class:`~flowcoord.errors.FlowRunning`) and the board's errors
    (:class:`~flowcoord.errors.CoordinationError`).
    """
    check_flow_id(flow_id)
    if board is not None:
        rec = await engine.backend.get_flow(flow_id)
        job = None
        if rec is not None and not is_finished(rec.state):
            job = await board.claimed_job(flow_id)
        if job is not None and job.owner is not None:
            if not force:
                raise FlowOwned(
                    f"flow {flow_id} is owned by {job.owner} (its job {job.job_id} is claimed "
                    "by that live member of the job board)",
                    flow_id=flow_id,
                    owner=job.owner,
                    job_id=job.job_id,
                )
            log.warning(
                "take_over_forced", flow_id=flow_id, owner=job.owner, job=job.job_id, cancel=cancel
            )
    return await engine.take_over(flow, flow_id, cancel=cancel)
