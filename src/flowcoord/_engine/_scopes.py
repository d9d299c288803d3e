"""Failure handling: a failed task's innermost retry scope decides (retry: revert the
scope's done tasks, reset, run again after a wait; revert: revert it and let the parent
decide; revert all); without a scope the flow halts to be reverted."""

from __future__ import annotations

import anyio

from .._failure import Failure
from .._journal._events import EventKind
from .._model._compile import Scope
from .._model._retry import Decision, RetryHistory
from .._states import TaskState
from ..errors import JournalError, OwnershipLost
from ._reverts import Reverts

__all__ = ["Scopes"]

_P, _S, _F = TaskState.PENDING, TaskState.SUCCESS, TaskState.FAILURE


class Scopes(Reverts):
    """Deciding what a failure means, scope by scope."""

    async def _failed(self, i: int, exc: Exception) -> None:
        self._no_checkpoints()
        node = self.plan.nodes[i]
        failure = Failure.from_exception(exc)
        self._log.warning(
            "task_failed", task=node.name, attempt=self.attempts[i], error=str(failure)
        )
        data = self.writer.encode(
            {"failure": failure.to_dict(), "attempt": self.attempts[i]}, what="failure"
        )
        with anyio.CancelScope(shield=True):  # see the success write in _execute
            await self.writer.write(EventKind.TASK_FAILED, node.name, data)
        self.failures[i] = failure
        self._set_task(i, _F)
        self._on_failure(i, {node.name: failure})

    def _on_failure(self, i: int, failures: dict[str, Failure]) -> None:
        scopes = self.plan.nodes[i].scopes
        if not scopes or self._halt is not None:
            self._halt_all()
        else:
            self._fail_scope(scopes[0], failures)

    def _fail_scope(self, scope: Scope, failures: dict[str, Failure]) -> None:
        k = scope.index
        self._scope_failures[k].update(failures)
        if self._scope_halted[k]:
            return
        self._scope_halted[k] = True
        self._scope_idle[k] = anyio.Event()
        if not self._scope_running[k]:
            self._scope_idle[k].set()
        assert self._tg is not None
        self._handlers += 1
        self._tg.start_soon(self._handle_scope, scope)

    async def _handle_scope(self, scope: Scope) -> None:
        k = scope.index
        try:
            await self._scope_idle[k].wait()
            if self._halt is not None:
                return
            attempt = self._scope_attempt[k]
            failures = dict(self._scope_failures[k])
            try:
                decision = scope.retry.on_failure(RetryHistory(attempt, failures, self.values))
            except Exception:
                self._log.exception("retry_controller_failed", scope=scope.key)
                decision = Decision.REVERT_ALL
            self._log.info("retry_decision", scope=scope.key, attempt=attempt, decision=decision)
            if decision is Decision.REVERT_ALL:
                self._halt_all()
                return
            with anyio.CancelScope(shield=True):
                await self._revert_nodes(scope.members)
            if self._halt is not None:
                return
            if decision is Decision.REVERT:
                data = self.writer.encode(
                    {"decision": "revert", "attempt": attempt, "reset": []}, what="retry"
                )
                await self.writer.write(EventKind.RETRY, scope.key, data)
                if scope.parent is None:
                    self._halt_all()
                else:
                    self._fail_scope(scope.parent, failures)
                return
            delay = scope.retry.delay(attempt)
            data = self.writer.encode(
                {
                    "decision": "retry",
                    "attempt": attempt + 1,
                    "reset": scope.task_names,
                    # nested scopes start again at their first attempt
                    "scopes": [
                        s.key for s in self.plan.scopes if s is not scope and s.within(scope)
                    ],
                    "delay": delay,
                },
                what="retry",
            )
            await self.writer.write(EventKind.RETRY, scope.key, data)
            if delay:
                await anyio.sleep(delay)
            if self._halt is not None:
                return
            self._reset_scope(scope, attempt + 1)
        except (OwnershipLost, JournalError) as exc:
            self._fatal_error(exc)
        finally:
            self._handlers -= 1
            self._changed.set()

    def _reset_scope(self, scope: Scope, attempt: int) -> None:
        nodes = self.plan.nodes
        members = scope.members
        for m in members:  # a start journaled before the reset is not this attempt's
            self._prestarted.pop(m, None)
        for m in members:
            if self.tstate[m] is not _P:
                self._set_task(m, _P)
            self.failures.pop(m, None)
            self.results[m] = None
        for s in self.plan.scopes:
            if s.within(scope):
                self._scope_halted[s.index] = False
                self._scope_failures[s.index].clear()
                if s is not scope:
                    self._scope_attempt[s.index] = 1
        self._scope_attempt[scope.index] = attempt
        self._scope_valued[scope.index] = True
        self.values.update(scope.retry.value(attempt, self.values))
        tstate = self.tstate
        for m in members:
            self._remaining[m] = sum(1 for p in nodes[m].preds if tstate[p] is not _S)
        for m in members:
            if self._remaining[m] == 0:
                if nodes[m].task is None:
                    self._pass_barrier(m)
                    self._complete(m)
                else:
                    self._ready.append(m)
        self._pump()
