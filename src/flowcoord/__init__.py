"""flowcoord: asyncio-native coordination — journaled, resumable, revertible flows with one
owner at a time and hand-over between engines."""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from ._codec import Codec as Codec
from ._compile import Plan as Plan
from ._compile import compile_flow as compile_flow
from ._coord._conductor import Conductor as Conductor
from ._coord._conductor import ConductorStats as ConductorStats
from ._coord._contract import Claim as Claim
from ._coord._contract import Job as Job
from ._coord._contract import JobBoard as JobBoard
from ._coord._contract import Member as Member
from ._coord._contract import TrashedJob as TrashedJob
from ._coord._memory import MemoryCoordinator as MemoryCoordinator
from ._coord._zk_types import ACL as ACL
from ._coord._zk_types import SessionState as SessionState
from ._engine._engine import Engine as Engine
from ._engine._engine import FlowHandle as FlowHandle
from ._engine._engine import FlowOutcome as FlowOutcome
from ._failure import Failure as Failure
from ._flow import Flow as Flow
from ._flow import Graph as Graph
from ._flow import Linear as Linear
from ._flow import Unordered as Unordered
from ._graph_export import to_dot as to_dot
from ._graph_export import to_mermaid as to_mermaid
from ._journal._contract import JournalBackend as JournalBackend
from ._journal._events import Entry as Entry
from ._journal._events import EventKind as EventKind
from ._journal._events import FlowRecord as FlowRecord
from ._journal._memory import MemoryJournal as MemoryJournal
from ._journal._replay import FlowReplay as FlowReplay
from ._journal._replay import TaskRecord as TaskRecord
from ._journal._replay import replay as replay
from ._journal._sqlite import SQLiteJournal as SQLiteJournal
from ._lazy import lazy_names as _lazy_names
from ._registry import FlowRegistry as FlowRegistry
from ._retry import Decision as Decision
from ._retry import ForEach as ForEach
from ._retry import ParameterizedForEach as ParameterizedForEach
from ._retry import Retry as Retry
from ._retry import RetryHistory as RetryHistory
from ._retry import Times as Times
from ._states import FlowState as FlowState
from ._states import StateChange as StateChange
from ._states import StateListener as StateListener
from ._states import TaskState as TaskState
from ._task import FunctionTask as FunctionTask
from ._task import Task as Task
from ._task import task as task
from .errors import *  # noqa: F403
from .errors import __all__ as _errors_all

if _TYPE_CHECKING:  # loaded on first use: they bring asyncpg and aiozk (see __getattr__)
    from ._coord._zk_board import ZooKeeperJobBoard as ZooKeeperJobBoard
    from ._coord._zk_session import ZooKeeperSession as ZooKeeperSession
    from ._journal._postgres import PostgresJournal as PostgresJournal
    from ._worker import JobSpec as JobSpec
    from ._worker import open_board as open_board
    from ._worker import post_jobs as post_jobs
    from ._worker import run_worker as run_worker

__version__ = "0.1.0.dev0"

# Public names whose modules load a driver (asyncpg, aiozk): imported on first use, so that
# `import flowcoord` stays light for code that runs on the embedded defaults.
_LAZY = {
    "ZooKeeperJobBoard": "._coord._zk_board",
    "ZooKeeperSession": "._coord._zk_session",
    "PostgresJournal": "._journal._postgres",
    "JobSpec": "._worker",
    "open_board": "._worker",
    "post_jobs": "._worker",
    "run_worker": "._worker",
}


__getattr__, __dir__ = _lazy_names(__name__, _LAZY)

__all__ = sorted(
    [
        "Codec",
        "run_worker",
        "post_jobs",
        "open_board",
        "JobSpec",
        "Conductor",
        "ConductorStats",
        "Claim",
        "Job",
        "JobBoard",
        "Member",
        "TrashedJob",
        "MemoryCoordinator",
        "ZooKeeperJobBoard",
        "ZooKeeperSession",
        "ACL",
        "SessionState",
        "PostgresJournal",
        "Decision",
        "Engine",
        "Entry",
        "EventKind",
        "Failure",
        "Flow",
        "FlowHandle",
        "FlowOutcome",
        "FlowRecord",
        "FlowRegistry",
        "FlowReplay",
        "FlowState",
        "ForEach",
        "FunctionTask",
        "Graph",
        "JournalBackend",
        "Linear",
        "MemoryJournal",
        "ParameterizedForEach",
        "Plan",
        "Retry",
        "RetryHistory",
        "SQLiteJournal",
        "StateChange",
        "StateListener",
        "Task",
        "TaskRecord",
        "TaskState",
        "Times",
        "Unordered",
        "compile_flow",
        "replay",
        "task",
        "to_dot",
        "to_mermaid",
        *_errors_all,
    ]
)
