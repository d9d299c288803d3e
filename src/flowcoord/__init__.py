"""flowcoord: asyncio-native coordination — journaled, resumable, revertible flows with one
owner at a time and hand-over between engines.

The top level holds what a flow author needs: tasks and flows, workflows, the engine and its
handles, retry controllers, states, the three journals, graph export, and the errors a flow's caller
handles. The rest is in public sub-packages: :mod:`flowcoord.journal` (the backend contract,
entries, replay), :mod:`flowcoord.coordination` (job boards, ZooKeeper, workers),
:mod:`flowcoord.errors` (every error), :mod:`flowcoord.testing` (servers, fault injection,
the crash explorer) and :mod:`flowcoord.aiohttp` (the web face).
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from ._codec import Codec as Codec
from ._engine._children import child as child
from ._engine._context import Context as Context
from ._engine._context import Step as Step
from ._engine._engine import Engine as Engine
from ._engine._handle import FlowHandle as FlowHandle
from ._engine._handle import FlowOutcome as FlowOutcome
from ._failure import Failure as Failure
from ._journal._memory import MemoryJournal as MemoryJournal
from ._journal._sqlite import SQLiteJournal as SQLiteJournal
from ._lazy import lazy_names as _lazy_names
from ._lazy import publish as _publish
from ._model._compile import Plan as Plan
from ._model._compile import compile_flow as compile_flow
from ._model._flow import Flow as Flow
from ._model._flow import Graph as Graph
from ._model._flow import Linear as Linear
from ._model._flow import Unordered as Unordered
from ._model._graph_export import to_dot as to_dot
from ._model._graph_export import to_mermaid as to_mermaid
from ._model._registry import FlowRegistry as FlowRegistry
from ._model._retry import Decision as Decision
from ._model._retry import ForEach as ForEach
from ._model._retry import ParameterizedForEach as ParameterizedForEach
from ._model._retry import Retry as Retry
from ._model._retry import RetryHistory as RetryHistory
from ._model._retry import Times as Times
from ._model._task import FunctionTask as FunctionTask
from ._model._task import Task as Task
from ._model._task import task as task
from ._model._workflow import Workflow as Workflow
from ._model._workflow import workflow as workflow
from ._states import FlowState as FlowState
from ._states import StateChange as StateChange
from ._states import StateListener as StateListener
from ._states import TaskState as TaskState
from .errors import ConfigurationError as ConfigurationError
from .errors import EncodingError as EncodingError
from .errors import FlowCancelled as FlowCancelled
from .errors import FlowcoordError as FlowcoordError
from .errors import FlowDefinitionError as FlowDefinitionError
from .errors import FlowFailed as FlowFailed
from .errors import FlowNotFound as FlowNotFound
from .errors import OwnershipLost as OwnershipLost
from .errors import RevertFailed as RevertFailed
from .errors import TaskFailed as TaskFailed

if _TYPE_CHECKING:  # loaded on first use (see __getattr__): asyncpg; the conductor, boards
    from . import coordination as coordination
    from ._journal._postgres import PostgresJournal as PostgresJournal

__version__ = "0.1.0.dev0"

# What a flow author needs (every error: flowcoord.errors). Kept sorted (a test checks).
__all__ = [
    "Codec",
    "ConfigurationError",
    "Context",
    "Decision",
    "EncodingError",
    "Engine",
    "Failure",
    "Flow",
    "FlowCancelled",
    "FlowDefinitionError",
    "FlowFailed",
    "FlowHandle",
    "FlowNotFound",
    "FlowOutcome",
    "FlowRegistry",
    "FlowState",
    "FlowcoordError",
    "ForEach",
    "FunctionTask",
    "Graph",
    "Linear",
    "MemoryJournal",
    "OwnershipLost",
    "ParameterizedForEach",
    "Plan",
    "PostgresJournal",
    "Retry",
    "RetryHistory",
    "RevertFailed",
    "SQLiteJournal",
    "StateChange",
    "StateListener",
    "Step",
    "Task",
    "TaskFailed",
    "TaskState",
    "Times",
    "Unordered",
    "Workflow",
    "child",
    "compile_flow",
    "task",
    "to_dot",
    "to_mermaid",
    "workflow",
]

# PostgresJournal's module loads asyncpg: imported on first use, so that `import flowcoord`
# stays light for code that runs on the embedded defaults.
__getattr__, __dir__ = _lazy_names(
    __name__, {"PostgresJournal": "flowcoord._journal._postgres"}, submodules=["coordination"]
)
_publish(__name__, [v for k, v in list(globals().items()) if k in __all__])

from . import errors as errors  # noqa: E402  (after the names above are published)
from . import journal as journal  # noqa: E402
