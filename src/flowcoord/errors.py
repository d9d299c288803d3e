"""Every error flowcoord raises.

The tree::

    FlowcoordError
    ├── FlowDefinitionError (also ValueError)   bad task or flow, found before anything runs
    │   ├── InvalidTaskError                    a task's signature/provides/rebind is unusable
    │   ├── DuplicateTaskError                  two tasks share a name somewhere in the tree
    │   ├── AmbiguousProviderError              two tasks provide the same name
    │   ├── CycleError                          dependencies form a cycle
    │   ├── MissingInputError                   a required name nothing provides or stores
    │   ├── NonDeterministicWorkflow            a workflow's code no longer matches its journal
    │   ├── WorkflowContextError                a workflow's ctx used outside its run, twice …
    │   ├── ChildFlowConflict                   a child flow's id is taken by another flow
    │   ├── UnknownFlow (also LookupError)      no flow is registered under this name
    │   └── FlowRunning                         this engine already starts or runs that flow id
    ├── ConfigurationError (also ValueError)    bad URL, DSN, option value
    ├── EncodingError (also ValueError)         a value the codec cannot turn into JSON
    ├── TaskFailed                              a task failed in another process (record only)
    │   └── StepFailed                          a workflow's step failed (live or journaled)
    ├── RevertFailed                            a revert raised; wraps the original exception
    ├── FlowFailed (also ExceptionGroup)        several failures, or a failure plus revert failures
    ├── FlowCancelled                           the flow was cancelled before it finished
    ├── FlowFinished                            nothing to resume or cancel: the flow has ended
    ├── InvalidStateTransition                  a state machine refused a transition
    ├── JournalError
    │   ├── JournalUnavailable                  cannot reach / open the journal store
    │   ├── JournalSchemaError                  the store's schema is newer than this code
    │   ├── JournalCorrupt                      an entry is not what flowcoord wrote (seq, kind)
    │   ├── FlowNotFound                        no such flow in the journal
    │   └── FlowExists                          a flow id is already taken by another flow
    ├── OwnershipLost                           fenced: a newer owner holds the flow
    └── CoordinationError
        ├── CoordinationUnavailable             cannot reach the coordination service
        ├── CoordinationTimeout                 a call exceeded its deadline
        ├── SessionLost                         the session expired or was presumed lost
        ├── AuthFailed                          credentials refused
        ├── NodeError                           a call on one node failed (``path``)
        │   ├── NodeMissing                     no node at that path
        │   ├── NodeExists                      a node already exists at that path
        │   ├── VersionConflict                 the node's version is not the expected one
        │   ├── NodeNotEmpty                    the node still has children
        │   └── AccessDenied                    the node's ACL refuses this session
        ├── JobNotFound
        ├── JobAlreadyClaimed
        ├── JobNotDue                           claim refused: the job's not_before is ahead
        ├── JobKeyConflict                      a post's key is held by another flow or inputs
        ├── UnknownQueue (also LookupError)     no queue of that name is declared on the board
        ├── QueueLimitReached                   claim refused: the queue's global limit is full
        ├── PartitionLimitReached               claim refused: the job's partition runs its limit
        ├── RateLimited                         claim refused: the queue's rate limit is used up
        ├── BoardLayoutError                    the board was made by another flowcoord layout
        └── FlowOwned                           take-over refused: a live owner holds the flow

Errors carry their context as attributes (``flow_id``, ``task``, ``hint`` …) and their message
says what to do about it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._failure import Failure

__all__ = [
    "AccessDenied",
    "AmbiguousProviderError",
    "AuthFailed",
    "BoardLayoutError",
    "ChildFlowConflict",
    "ConfigurationError",
    "CoordinationError",
    "CoordinationTimeout",
    "CoordinationUnavailable",
    "CycleError",
    "DuplicateTaskError",
    "EncodingError",
    "FlowCancelled",
    "FlowDefinitionError",
    "FlowExists",
    "FlowFailed",
    "FlowFinished",
    "FlowNotFound",
    "FlowOwned",
    "FlowRunning",
    "FlowcoordError",
    "InvalidStateTransition",
    "InvalidTaskError",
    "JobAlreadyClaimed",
    "JobKeyConflict",
    "JobNotDue",
    "JobNotFound",
    "JournalCorrupt",
    "JournalError",
    "JournalSchemaError",
    "JournalUnavailable",
    "MissingInputError",
    "NodeError",
    "NodeExists",
    "NodeMissing",
    "NodeNotEmpty",
    "NonDeterministicWorkflow",
    "OwnershipLost",
    "PartitionLimitReached",
    "QueueLimitReached",
    "RateLimited",
    "RevertFailed",
    "SessionLost",
    "StepFailed",
    "TaskFailed",
    "UnknownFlow",
    "UnknownQueue",
    "VersionConflict",
    "WorkflowContextError",
]


class FlowcoordError(Exception):
    """Base of every flowcoord error."""

    def __init__(
        self,
        message: str,
        *,
        flow_id: str | None = None,
        task: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.flow_id = flow_id
        self.task = task
        self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        text = self.message
        if self.hint:
            text = f"{text} ({self.hint})"
        return text


# -- definition -----------------------------------------------------------------------------


class FlowDefinitionError(FlowcoordError, ValueError):
    """A task or flow cannot run as written. Raised before anything runs or is journaled."""

    def __init__(
        self,
        message: str,
        *,
        flow: str | None = None,
        tasks: Sequence[str] = (),
        names: Sequence[str] = (),
        hint: str | None = None,
        flow_id: str | None = None,
    ) -> None:
        self.flow = flow
        self.tasks = tuple(tasks)
        self.names = tuple(names)
        prefix = f"flow {flow!r}: " if flow else ""
        super().__init__(
            prefix + message,
            flow_id=flow_id,
            task=self.tasks[0] if self.tasks else None,
            hint=hint,
        )


class InvalidTaskError(FlowDefinitionError):
    """A task's function, ``provides``, ``rebind`` or ``inject`` cannot work."""


class DuplicateTaskError(FlowDefinitionError):
    """Two tasks in one flow tree share a name."""


class AmbiguousProviderError(FlowDefinitionError):
    """Two tasks provide the same name; a requirement could not pick one."""


class CycleError(FlowDefinitionError):
    """The dependencies (structural and by data) form a cycle; ``tasks`` lists it in order."""


class MissingInputError(FlowDefinitionError):
    """A task requires a name that no task provides and the caller did not store."""


class NonDeterministicWorkflow(FlowDefinitionError):
    """A resumed workflow's code calls something else at a position than its journal holds
    (``position``, the ``journaled`` step name and the one ``called``, None when the code
    stopped before it). Raised before anything is written; the flow stays as journaled, to
    be resumed by the code that started it (or with ``ctx.patched`` guarding the change)."""

    def __init__(
        self,
        message: str,
        *,
        flow: str | None = None,
        flow_id: str | None = None,
        position: int,
        journaled: str,
        called: str | None,
    ) -> None:
        self.position = position
        self.journaled = journaled
        self.called = called
        super().__init__(
            message,
            flow=flow,
            flow_id=flow_id,
            hint="resume it with the code that started it; guard code changes for running "
            "workflows with ctx.patched(...)",
        )


class WorkflowContextError(FlowDefinitionError):
    """A workflow's context used where it cannot journal: outside its own run (kept past the
    workflow's end, or handed to another task), the same ``ctx.patched`` id twice in one run,
    a step awaited twice. Raised before anything is written."""


class ChildFlowConflict(FlowDefinitionError):
    """A child flow's id (its parent's id and its position) is journaled already as
    something else than this parent's child: another flow was given that id. Raised before
    anything is written; the other flow is left alone."""


class UnknownFlow(FlowDefinitionError, LookupError):
    """No flow is registered under this name."""


class FlowRunning(FlowDefinitionError):
    """A flow with this id is already being started, or running, on this engine: an engine
    runs a flow id once at a time (:meth:`~flowcoord.Engine.start`, ``take_over`` and
    ``fork`` refuse a second one). A :class:`FlowDefinitionError`, as this error was before it
    had a class of its own; the HTTP API answers it 409."""

    def __init__(self, message: str, *, flow_id: str | None = None) -> None:
        super().__init__(
            message,
            flow_id=flow_id,
            hint="watch the running flow (its handle, or GET .../flows/{id}); start it again "
            "once it has ended",
        )


class ConfigurationError(FlowcoordError, ValueError):
    """An option, URL or DSN is malformed or names something that does not exist."""


class EncodingError(FlowcoordError, ValueError):
    """A value cannot be encoded to JSON by the journal's codec."""


# -- running --------------------------------------------------------------------------------


class TaskFailed(FlowcoordError):
    """A task failed and only its journaled record is available (e.g. after a resume)."""

    def __init__(self, failure: Failure, *, flow_id: str | None = None, task: str | None = None):
        self.failure = failure
        super().__init__(
            f"task {task!r} failed: {failure.exc_type}: {failure.message}",
            flow_id=flow_id,
            task=task,
        )


class StepFailed(TaskFailed):
    """A workflow's step failed; ``failure`` records it (``failure.matches(ValueError)``) and
    ``__cause__`` is the exception when it was raised in this run. The same error is raised
    when a resumed run reaches that step: a workflow sees the same thing on every run."""

    def __init__(self, failure: Failure, *, flow_id: str | None = None, task: str | None = None):
        self.failure = failure
        what = f"step {task!r}" if task is not None else "the workflow"
        FlowcoordError.__init__(
            self,
            f"{what} failed: {failure.exc_type}: {failure.message}",
            flow_id=flow_id,
            task=task,
        )


class RevertFailed(FlowcoordError):
    """A task's revert raised. ``__cause__`` is the revert's exception when it is available."""

    def __init__(self, failure: Failure, *, flow_id: str | None = None, task: str | None = None):
        self.failure = failure
        super().__init__(
            f"revert of task {task!r} failed: {failure.exc_type}: {failure.message}",
            flow_id=flow_id,
            task=task,
            hint="the task's side effects may not be undone; inspect the flow's journal",
        )


class FlowFailed(FlowcoordError, ExceptionGroup):
    """A flow failed with several errors, or with revert failures after its failure.

    Behaves as an :class:`ExceptionGroup` of the original exceptions (or :class:`TaskFailed`
    records) followed by :class:`RevertFailed` errors, so ``except*`` works on it.
    """

    def __new__(cls, message: str, exceptions: Sequence[Exception], **kwargs: Any) -> FlowFailed:
        self = ExceptionGroup.__new__(cls, message, list(exceptions))
        return self

    def __init__(
        self,
        message: str,
        exceptions: Sequence[Exception],
        *,
        flow_id: str | None = None,
        failures: Iterable[tuple[str, Failure]] = (),
        revert_failures: Iterable[tuple[str, Failure]] = (),
    ) -> None:
        self.flow_id = flow_id
        self.task = None
        self.hint = None
        self.failures = dict(failures)
        self.revert_failures = dict(revert_failures)

    def __str__(self) -> str:
        return ExceptionGroup.__str__(self)

    def derive(self, excs: Sequence[Exception]) -> FlowFailed:  # type: ignore[override]
        return FlowFailed(
            str(self.args[0]),
            excs,
            flow_id=self.flow_id,
            failures=self.failures.items(),
            revert_failures=self.revert_failures.items(),
        )


class FlowCancelled(FlowcoordError):
    """The flow was cancelled; completed tasks were reverted unless asked otherwise."""


class FlowFinished(FlowcoordError):
    """A take-over (resume, cancel) was asked of a flow that has ended; ``state`` says how."""

    def __init__(self, message: str, *, flow_id: str | None = None, state: str = "") -> None:
        self.state = state
        super().__init__(
            message,
            flow_id=flow_id,
            hint="a finished flow stays as it is; run it again as a new flow (or retry it "
            "from a task)",
        )


class InvalidStateTransition(FlowcoordError):
    """A flow or task state machine refused a transition (a bug, or a corrupt journal)."""


# -- journal --------------------------------------------------------------------------------


class JournalError(FlowcoordError):
    """The journal store failed."""


class JournalUnavailable(JournalError):
    """The journal store cannot be reached or opened."""


class JournalSchemaError(JournalError):
    """The journal store's schema is one this version of flowcoord does not know."""


class JournalCorrupt(JournalError):
    """A journal entry cannot be what flowcoord wrote: malformed data, an unknown state, a
    task the flow does not have. Raised before anything more is written for the flow.

    ``seq`` and ``kind`` name the entry; ``flow_id`` and ``task`` (when known) say whose it
    is; the message says what is wrong with it.
    """

    def __init__(
        self,
        message: str,
        *,
        flow_id: str | None = None,
        task: str | None = None,
        seq: int | None = None,
        kind: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.seq = seq
        self.kind = kind
        super().__init__(
            message,
            flow_id=flow_id,
            task=task,
            hint=hint
            or "the journal was changed by something other than flowcoord; inspect the raw "
            "entries (GET /api/flows/ID/journal, or the store itself) and repair or delete "
            "the entry",
        )


class FlowNotFound(JournalError):
    """No flow with this id in the journal."""


class FlowExists(JournalError):
    """A flow with this id exists and is a different flow."""


# -- ownership and coordination -------------------------------------------------------------


class OwnershipLost(FlowcoordError):
    """This engine no longer owns the flow: a newer owner's fencing token is in the journal,
    or the coordination session that held the claim is gone. Nothing more was written."""


class CoordinationError(FlowcoordError):
    """The coordination service (ZooKeeper or the in-memory twin) failed."""


class CoordinationUnavailable(CoordinationError):
    """The coordination service cannot be reached."""


class CoordinationTimeout(CoordinationError, TimeoutError):
    """A coordination call did not finish within its deadline."""


class SessionLost(CoordinationError):
    """The coordination session expired, or has been out of contact long enough to be
    presumed expired; every claim it held is gone."""


class AuthFailed(CoordinationError):
    """The coordination service refused the credentials."""


class NodeError(CoordinationError):
    """A call on one coordination node failed; ``path`` names the node (in the namespace)."""

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None):
        self.path = path
        super().__init__(message, hint=hint)


class NodeMissing(NodeError):
    """No node exists at ``path`` (or its parent is missing, for a create)."""


class NodeExists(NodeError):
    """A node already exists at ``path``."""


class VersionConflict(NodeError):
    """The node at ``path`` changed since its version was read; re-read it and decide again."""


class NodeNotEmpty(NodeError):
    """The node at ``path`` still has children, so it cannot be deleted."""


class AccessDenied(NodeError):
    """The ACL of the node at ``path`` does not let this session's identity do that."""


class JobNotFound(CoordinationError):
    """No such job on the board (consumed, trashed, or never posted)."""


class JobAlreadyClaimed(CoordinationError):
    """Another conductor holds the job's claim."""


class JobNotDue(CoordinationError):
    """A claim of a delayed job before its ``not_before`` (epoch seconds): nothing was
    written. Boards never list such a job as claimable; claim it once it is due."""

    def __init__(self, message: str, *, job_id: str, not_before: float) -> None:
        self.job_id = job_id
        self.not_before = not_before
        super().__init__(message, hint="claim it from claimable() once it is due")


class JobKeyConflict(CoordinationError):
    """A job was posted under an idempotency ``key`` that the board holds for another job:
    a different flow or different inputs (``job_id`` is that job, ``existing_flow`` its
    flow). Nothing was written. The same flow and inputs under the same key would have
    returned the existing job instead."""

    def __init__(
        self,
        message: str,
        *,
        key: str,
        job_id: str,
        existing_flow: str,
        flow_id: str | None = None,
    ) -> None:
        self.key = key
        self.job_id = job_id
        self.existing_flow = existing_flow
        super().__init__(
            message,
            flow_id=flow_id,
            hint="post another request under another key (or flow id); a key stays taken "
            "while its job waits or runs, and for the board's key retention after it ended",
        )


class UnknownQueue(CoordinationError, LookupError):
    """No queue ``queue`` is declared on the job board: a post to it, or a conductor
    serving it, is refused before anything is written."""

    def __init__(self, message: str, *, queue: str) -> None:
        self.queue = queue
        super().__init__(
            message,
            hint="declare it first (JobBoard.declare_queue, or a worker started with "
            "--queue NAME); the queue 'default' always exists",
        )


class QueueLimitReached(CoordinationError):
    """A claim was refused because queue ``queue`` runs ``limit`` jobs across the fleet
    already (its global concurrency limit). Nothing was written; a slot comes back when a
    job of that queue ends or its owner's session expires."""

    def __init__(self, message: str, *, queue: str, limit: int) -> None:
        self.queue = queue
        self.limit = limit
        super().__init__(message, hint="claim again once one of its jobs has ended")


class PartitionLimitReached(CoordinationError):
    """A claim was refused because the job's ``partition`` runs ``limit`` jobs of queue
    ``queue`` across the fleet already (the queue's ``partition_limit``). Nothing was
    written; the jobs of other partitions are not held up, and a slot of this one comes back
    when one of its jobs ends or its owner's session expires."""

    def __init__(self, message: str, *, queue: str, partition: str, limit: int) -> None:
        self.queue = queue
        self.partition = partition
        self.limit = limit
        super().__init__(
            message, hint="claim another partition's job; this one once one of its jobs ended"
        )


class RateLimited(CoordinationError):
    """A claim was refused because queue ``queue`` started as many jobs as its
    ``rate_limit`` allows within the last period. Nothing was written; the next start is
    allowed in about ``retry_after`` seconds (``wait_changed`` wakes then)."""

    def __init__(self, message: str, *, queue: str, retry_after: float) -> None:
        self.queue = queue
        self.retry_after = retry_after
        super().__init__(message, hint=f"claim again in {retry_after:.3g} s")


class BoardLayoutError(CoordinationError):
    """The job board at ``path`` was laid out by another version of flowcoord (``found``
    says what is there), so this one refuses to read or write it rather than misread it."""

    def __init__(self, message: str, *, path: str, found: str, hint: str) -> None:
        self.path = path
        self.found = found
        super().__init__(message, hint=hint)


class FlowOwned(CoordinationError):
    """A take-over (resume, cancel) was refused: ``owner``, a live member of the job board,
    holds the claim of the flow's job ``job_id``, so the flow is running there. Wait for it,
    or take over with ``force`` (:func:`flowcoord.coordination.take_over`, ``--force``,
    ``?force=true``), which fences the owner out at its next journal write."""

    def __init__(
        self, message: str, *, flow_id: str | None = None, owner: str, job_id: str
    ) -> None:
        self.owner = owner
        self.job_id = job_id
        super().__init__(
            message,
            flow_id=flow_id,
            hint="the owner is alive; wait, or pass force=True / --force / ?force=true to fence it",
        )
