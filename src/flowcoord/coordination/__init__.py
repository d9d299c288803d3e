"""Coordination: one owner per flow, and a job board producers post to and workers consume.

- :class:`JobBoard` is the contract (post, claim, complete, abandon, trash; members; named
  queues with priorities, delayed jobs, global and per-worker concurrency limits, and
  idempotent posts under a key), with :class:`Job`, :class:`Claim`, :class:`Member`,
  :class:`TrashedJob` and :class:`QueueConfig`. Two boards meet it:
  :class:`ZooKeeperJobBoard` on a :class:`ZooKeeperSession`, and the in-process
  :class:`MemoryCoordinator` (the tested twin, for one machine and for tests).
- :class:`Conductor` claims jobs from a board and runs them on an engine, fenced by the
  claim; :func:`run_worker` is the whole ``flowcoord worker`` process, :func:`post_jobs` and
  :func:`open_board` are the producer side (:class:`JobSpec` is one job to post), and
  :func:`declare_queues` makes sure queues exist.
- :func:`take_over` is an operator's resume or cancel of a flow: refused with
  :class:`~flowcoord.errors.FlowOwned` while a live member holds the flow's claim on the
  board (unless forced), else the journal-fenced :meth:`Engine.take_over
  <flowcoord.Engine.take_over>`.
- Sessions report :class:`SessionState` changes (:class:`SessionChange`, to a
  :class:`SessionListener`); the same states on every backend.
- ZooKeeper specifics: :class:`ACL` / :class:`Perm` for node ACLs, and the low-level
  transaction operations of :meth:`ZooKeeperSession.transaction` (:class:`CheckVersion`,
  :class:`CreateNode`, :class:`SetData`, :class:`DeleteNode`, :class:`OpResult`,
  :class:`NodeStat`, :class:`Watcher`).

The ZooKeeper names load ``aiozk`` on first use only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from .._coord._conductor import Conductor as Conductor
from .._coord._conductor import ConductorStats as ConductorStats
from .._coord._contract import Claim as Claim
from .._coord._contract import Job as Job
from .._coord._contract import JobBoard as JobBoard
from .._coord._contract import Member as Member
from .._coord._contract import QueueConfig as QueueConfig
from .._coord._contract import TrashedJob as TrashedJob
from .._coord._memory import MemoryCoordinator as MemoryCoordinator
from .._coord._session import SessionChange as SessionChange
from .._coord._session import SessionListener as SessionListener
from .._coord._session import SessionState as SessionState
from .._coord._takeover import take_over as take_over
from .._coord._zk_types import ACL as ACL
from .._coord._zk_types import CheckVersion as CheckVersion
from .._coord._zk_types import CreateNode as CreateNode
from .._coord._zk_types import DeleteNode as DeleteNode
from .._coord._zk_types import NodeStat as NodeStat
from .._coord._zk_types import OpResult as OpResult
from .._coord._zk_types import Perm as Perm
from .._coord._zk_types import SetData as SetData
from .._lazy import lazy_names as _lazy_names
from .._lazy import publish as _publish

if _TYPE_CHECKING:  # loaded on first use: they bring aiozk
    from .._coord._workers import JobSpec as JobSpec
    from .._coord._workers import declare_queues as declare_queues
    from .._coord._workers import open_board as open_board
    from .._coord._workers import post_jobs as post_jobs
    from .._coord._workers import run_worker as run_worker
    from .._coord._zk_board import ZooKeeperJobBoard as ZooKeeperJobBoard
    from .._coord._zk_session import Watcher as Watcher
    from .._coord._zk_session import ZooKeeperSession as ZooKeeperSession

_LAZY = {
    "JobSpec": "flowcoord._coord._workers",
    "declare_queues": "flowcoord._coord._workers",
    "open_board": "flowcoord._coord._workers",
    "post_jobs": "flowcoord._coord._workers",
    "run_worker": "flowcoord._coord._workers",
    "ZooKeeperJobBoard": "flowcoord._coord._zk_board",
    "Watcher": "flowcoord._coord._zk_session",
    "ZooKeeperSession": "flowcoord._coord._zk_session",
}

__all__ = [
    "ACL",
    "CheckVersion",
    "Claim",
    "Conductor",
    "ConductorStats",
    "CreateNode",
    "DeleteNode",
    "Job",
    "JobBoard",
    "JobSpec",
    "Member",
    "MemoryCoordinator",
    "NodeStat",
    "OpResult",
    "Perm",
    "QueueConfig",
    "SessionChange",
    "SessionListener",
    "SessionState",
    "SetData",
    "TrashedJob",
    "Watcher",
    "ZooKeeperJobBoard",
    "ZooKeeperSession",
    "declare_queues",
    "open_board",
    "post_jobs",
    "run_worker",
    "take_over",
]

__getattr__, __dir__ = _lazy_names(__name__, _LAZY)
_publish(__name__, [v for k, v in list(globals().items()) if k in __all__])
