"""The face a workflow's code sees: ``ctx.step`` (journaled by call order), ``ctx.gather``,
journaled clock, random numbers and ids, durable sleep, and events sent to the flow."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar

import anyio

from .._model._flow import Flow
from .._model._retry import Retry
from .._model._task import FunctionTask, Task
from .._model._workflow import Workflow
from ..errors import InvalidTaskError, WorkflowContextError
from ._children import ChildFlow, current_flow
from ._wf_events import check_timeout, check_wait
from ._wf_events import wait_event as _wait_event
from ._wf_sleep import check_seconds
from ._wf_sleep import sleep as _durable_sleep

if TYPE_CHECKING:
    from ._workflow import WorkflowRun

__all__ = ["Context", "Step"]

T = TypeVar("T")

_TASK_CACHE = 256  # tasks made of plain functions, kept per workflow


class Step(Generic[T]):
    """A step called but not awaited yet: it has its position (taken when ``ctx.step`` was
    called, so concurrent steps are numbered in the order they are called in, not the order
    they finish). Await it once."""

    __slots__ = ("_awaited", "_run", "args", "group", "kwargs", "pos", "task")

    def __init__(
        self, run: WorkflowRun, pos: int, task: Task, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self._run = run
        self.pos = pos
        self.task = task
        self.args = args
        self.kwargs = kwargs
        self.group: int | None = None
        self._awaited = False

    @property
    def name(self) -> str:
        return self.task.name

    def __await__(self) -> Generator[Any, None, T]:
        if self._awaited:
            raise WorkflowContextError(
                f"step {self.pos} ({self.name!r}) was awaited already",
                hint="await each ctx.step(...) once; keep its result to use it again",
            )
        self._awaited = True
        # the run's own awaitable, not a generator around it (one frame less per step)
        return self._run.awaited(self).__await__()

    def __repr__(self) -> str:
        return f"<Step {self.pos} {self.name!r}>"


class Context:
    """What a workflow's code is given first: ``await ctx.step(fn, *args, **kwargs)`` runs
    ``fn`` as a journaled step (an :func:`~flowcoord.task` — its revert compensates — or any
    ``async def``, with ``revert=`` for its compensation); ``ctx.gather`` runs steps at once;
    ``ctx.now()``, ``ctx.random()``, ``ctx.uuid()`` are journaled, so a resumed run sees the
    values the first run saw.

    A resumed run calls the workflow again from the top: a journaled step returns its
    journaled result (or raises its journaled failure, as :class:`~flowcoord.errors.StepFailed`)
    without running; the first step the journal does not have runs live. The code between
    steps must therefore be deterministic: a step whose name differs from the journal's at its
    position raises :class:`~flowcoord.errors.NonDeterministicWorkflow`.
    """

    __slots__ = ("_closed", "_patches", "_pos", "_run", "_tasks")

    def __init__(self, run: WorkflowRun) -> None:
        self._run = run
        self._pos = 0
        self._tasks = run.workflow.step_tasks  # shared by the workflow's runs
        self._patches: set[str] = set()
        self._closed = False

    def _close(self) -> None:
        """The workflow's run ended: this context journals nothing more."""
        self._closed = True

    @property
    def flow_id(self) -> str:
        return self._run.flow_id

    @property
    def name(self) -> str:
        return self._run.name

    @property
    def position(self) -> int:
        """The position of the latest step (or journaled value) called; 0 before any."""
        return self._pos

    def _next(self) -> int:
        self._check()
        self._pos += 1
        return self._pos

    def _check(self) -> None:
        """A context journals for its own run only, while it runs."""
        if self._closed:
            raise WorkflowContextError(
                f"the context of workflow {self._run.name!r} (flow {self._run.flow_id}) was "
                "used after its run ended",
                flow=self._run.name,
                flow_id=self._run.flow_id,
                hint="call ctx methods only in the workflow's own code, while it runs; a "
                "task it started must end before the workflow returns",
            )
        running = current_flow.get()
        if running is not None and running != self._run.flow_id:
            raise WorkflowContextError(
                f"the context of flow {self._run.flow_id} was used in the run of flow {running}",
                flow=self._run.name,
                flow_id=self._run.flow_id,
                hint="each workflow uses the ctx it is given; run another workflow with "
                "ctx.run(...)",
            )

    def step(
        self,
        fn: Task | Callable[..., Awaitable[T]],
        /,
        *args: Any,
        name: str | None = None,
        revert: Callable[..., Awaitable[Any]] | None = None,
        timeout: float | None = None,
        retry: Retry | None = None,
        **kwargs: Any,
    ) -> Step[T]:
        """A journaled call of ``fn(*args, **kwargs)``; await it for its result. Its arguments
        and result go through the engine's codec (the result you get is the journaled one,
        also the first time: a tuple comes back as a list). ``revert``: an ``async def``
        taking the step's parameters by name (and ``result``) that undoes it when the
        workflow fails or is cancelled; a task's own revert is used otherwise. ``timeout``:
        seconds, the step fails with ``TimeoutError`` beyond them. ``retry``: a retry
        controller (:class:`~flowcoord.Times`, :class:`~flowcoord.ForEach` …; a task's own
        otherwise): a failed attempt is compensated, then the step runs again after the
        controller's wait, every attempt journaled; it fails once the controller gives up."""
        try:
            task = self._task(fn, name, revert, timeout, retry)
        except InvalidTaskError as exc:
            # the code is wrong, not the run: it ends here (nothing journaled for the step),
            # and the flow stays for the fixed code to resume, whatever the code catches
            bad = InvalidTaskError(
                f"step {self._pos + 1} of workflow {self._run.name!r}: {exc.message}",
                tasks=exc.tasks,
                hint=exc.hint
                or "a step is an async def (or an @fc.task); run blocking code in a thread "
                "from one: await anyio.to_thread.run_sync(fn, ...)",
            )
            self._run._broken = self._run._broken or bad
            raise bad from None
        return Step(self._run, self._next(), task, args, kwargs)

    def run(
        self,
        flow: Flow | Workflow,
        inputs: Mapping[str, Any] | None = None,
        /,
        *,
        name: str | None = None,
    ) -> Step[Any]:
        """Run ``flow`` (a pattern flow or a workflow) as a child: one step of this workflow,
        awaited for the child's result (a workflow's return value, a pattern flow's
        provided names). The child has its own journal and a deterministic id, this
        workflow's id and the step's position (``"<id>.<pos>:<name>"``), so a resumed run
        resumes the child its crashed run started. The step is compensable: when this
        workflow fails or is cancelled, a child that succeeded is undone (its steps
        reverted, it ends CANCELLED); cancelling this workflow cancels a running child and
        waits for its rollback; suspend, stop and resume reach it too. A failed child has
        reverted itself; the step raises :class:`~flowcoord.errors.StepFailed`."""
        key = ("child", flow, name)
        task = self._tasks.get(key)
        if task is None:
            task = self._keep(key, ChildFlow(flow, name=name))
        return Step(self._run, self._next(), task, (), dict(inputs or {}))

    def _keep(self, key: object, task: Task) -> Task:
        tasks = self._tasks
        tasks[key] = task
        if len(tasks) > _TASK_CACHE:
            tasks.popitem(last=False)  # a closure made per run: the cache stays bounded
        return task

    async def gather(self, *steps: Awaitable[Any]) -> list[Any]:
        """Run ``steps`` at once and return their results in order. Every step runs to its
        end; if some failed, the first of them (by position, so the same on every run)
        raises. Their compensations run at once too."""
        group = min((s.pos for s in steps if isinstance(s, Step)), default=None)
        for s in steps:
            if isinstance(s, Step):
                s.group = group
        results: list[Any] = [None] * len(steps)
        errors: list[BaseException | None] = [None] * len(steps)

        async def one(k: int) -> None:
            try:
                results[k] = await steps[k]
            except Exception as exc:
                errors[k] = exc

        async with anyio.create_task_group() as tg:
            for k in range(len(steps)):
                tg.start_soon(one, k)
        for err in errors:
            if err is not None:
                raise err
        return results

    def patched(self, patch_id: str) -> bool:
        """Whether this run takes the code path a change introduced: True for new runs and
        for runs that reach this point after the change was deployed (a marker is journaled
        here), False for runs journaled past this point by the code before it::

            if ctx.patched("audit-log"):
                await ctx.step(audit, vm)

        Once no run from before the change is left, replace the call with
        :meth:`deprecate_patch` (and later remove that too)."""
        self._patch_id(patch_id)
        return self._run.patch(self, patch_id, mark=True)

    def deprecate_patch(self, patch_id: str) -> None:
        """The patch ``patch_id`` is now the only path: runs that journaled its marker
        replay it here, new runs write none."""
        self._patch_id(patch_id)
        self._run.patch(self, patch_id, mark=False)

    def _patch_id(self, patch_id: str) -> None:
        self._check()
        if not isinstance(patch_id, str) or not patch_id:
            raise WorkflowContextError(
                f"a patch id is a non-empty str, got {patch_id!r}", flow=self._run.name
            )
        if patch_id in self._patches:
            raise WorkflowContextError(
                f"patch id {patch_id!r} is used twice in one run of workflow {self._run.name!r}",
                flow=self._run.name,
                flow_id=self._run.flow_id,
                hint="one id per code change, checked once (keep the answer in a variable); "
                "give each change its own id",
            )
        self._patches.add(patch_id)

    def _take(self, pos: int) -> None:
        self._pos = pos

    def now(self) -> float:
        """The time (``time.time()``) when this point was first reached, journaled."""
        return float(self._run.value(self._next(), "now", time.time))

    def random(self) -> float:
        """A random float in [0, 1), drawn once and journaled."""
        return float(self._run.value(self._next(), "random", random.random))

    def uuid(self) -> str:
        """A random UUID (hex), made once and journaled."""
        return str(self._run.value(self._next(), "uuid", lambda: uuid.uuid4().hex))

    async def sleep(self, seconds: float) -> None:
        """Sleep durably: the time to wake at (now + ``seconds``) is journaled when this
        point is first reached, so a run resumed later (after a crash, a stop, on another
        machine) sleeps only what is left, and not at all once that time has passed. A
        suspended run waits for ``resume`` (the time keeps running), a stopped one ends as
        SUSPENDED at once, a cancelled one compensates. The sleeping run keeps its flow
        (under a conductor, its job's claim)."""
        self._check()
        try:
            seconds = check_seconds(
                seconds,
                self._run.name,
                hint="for a point in time, sleep its distance from ctx.now()",
            )
        except WorkflowContextError as exc:
            self._broken(exc)
        await _durable_sleep(self._run, self._next(), seconds)

    async def wait_event(
        self,
        topic: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a journaled outcome (None)
    ) -> Any:
        """The value of the next event sent to this flow under ``topic``
        (``engine.send_event``, ``flowcoord flows send-event``, ``POST
        /api/flows/{id}/events/{topic}``), waiting for it if none is there yet; ``None`` if
        ``timeout`` seconds pass first. Which event it took is journaled: a resumed run gets
        the same value here, and the run's next wait for the topic the next event (events
        of a topic are taken in the order they were sent, each once). The wait obeys
        suspend, stop and cancel as :meth:`sleep` does."""
        self._check()
        try:
            topic = check_wait(topic, self._run.name)
            timeout = check_timeout(timeout, self._run.name)
        except WorkflowContextError as exc:
            self._broken(exc)
        return await _wait_event(self._run, self._next(), topic, timeout)

    def _broken(self, exc: WorkflowContextError) -> NoReturn:
        """The code is wrong, not the run: it ends here, nothing journaled, and the flow
        stays for the fixed code to resume, whatever the code catches."""
        self._run._broken = self._run._broken or exc
        raise exc

    def _task(
        self,
        fn: Task | Callable[..., Awaitable[Any]],
        name: str | None,
        revert: Callable[..., Awaitable[Any]] | None,
        timeout: float | None,
        retry: Retry | None,
    ) -> Task:
        plain = name is None and revert is None and timeout is None and retry is None
        if plain and isinstance(fn, Task):
            return fn
        # the objects (an id could be reused); a plain function is its own key
        key: object = fn if plain else (fn, name, revert, timeout, retry)
        task = self._tasks.get(key)
        if task is None:
            if isinstance(fn, FunctionTask):
                task = FunctionTask(
                    fn.fn,
                    name or fn.name,
                    revert=revert or fn.revert_fn,
                    timeout=timeout or fn.timeout,
                    inject=fn.inject,
                    retry=retry or fn.retry,
                )
            elif isinstance(fn, Task):
                raise InvalidTaskError(
                    f"step {fn.name!r}: name=, revert=, timeout= and retry= apply to functions and "
                    "@task functions; a Task subclass defines them itself",
                    tasks=[fn.name],
                )
            else:
                task = FunctionTask(fn, name, revert=revert, timeout=timeout, retry=retry)
            self._keep(key, task)
        return task
