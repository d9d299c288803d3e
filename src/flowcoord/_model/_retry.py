"""Retry controllers: what to do when a task or sub-flow fails."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import tenacity

from .._failure import Failure
from ..errors import InvalidTaskError

__all__ = ["Decision", "ForEach", "ParameterizedForEach", "Retry", "RetryHistory", "Times"]

#: A backoff policy: any tenacity ``wait`` strategy, e.g. ``tenacity.wait_exponential_jitter()``.
Wait = Callable[[tenacity.RetryCallState], float]


class Decision(StrEnum):
    RETRY = "retry"  # revert the scope's tasks, then run the scope again
    REVERT = "revert"  # revert the scope's tasks, then let the enclosing scope decide
    REVERT_ALL = "revert_all"  # revert the whole flow


@dataclass(frozen=True, slots=True)
class RetryHistory:
    """What a controller knows when deciding: attempts made so far and their failures."""

    attempt: int  # 1 for the first run
    failures: Mapping[str, Failure]  # task name → failure in this attempt
    store: Mapping[str, Any]


class Retry:
    """Base retry controller. Subclass and override :meth:`on_failure` for custom decisions.

    ``wait`` is a tenacity wait strategy giving the delay before attempt *n* (jitter included
    if the strategy has it). ``on_exhausted`` is the decision once no attempt is left.
    ``retry_on`` limits retrying to failures whose exception type matches one of the names or
    classes given (others get ``on_exhausted`` at once).
    """

    provides: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        wait: Wait | None = None,
        on_exhausted: Decision = Decision.REVERT,
        retry_on: Sequence[type[BaseException] | str] = (),
    ) -> None:
        self.wait = wait
        self.on_exhausted = Decision(on_exhausted)
        self.retry_on = tuple(retry_on)

    def max_attempts(self, store: Mapping[str, Any]) -> int | None:
        return None

    def value(self, attempt: int, store: Mapping[str, Any]) -> Mapping[str, Any]:
        """Names this controller provides to its scope for ``attempt`` (1-based)."""
        return {}

    def on_failure(self, history: RetryHistory) -> Decision:
        if self.retry_on and not any(f.matches(*self.retry_on) for f in history.failures.values()):
            return self.on_exhausted
        limit = self.max_attempts(history.store)
        if limit is not None and history.attempt >= limit:
            return self.on_exhausted
        return Decision.RETRY

    def delay(self, attempt: int) -> float:
        """Seconds to wait before running attempt ``attempt + 1``."""
        if self.wait is None:
            return 0.0
        state = tenacity.RetryCallState(retry_object=_RETRYING, fn=None, args=(), kwargs={})
        state.attempt_number = attempt
        return max(0.0, float(self.wait(state)))


_RETRYING = tenacity.AsyncRetrying()


class Times(Retry):
    """Run the scope up to ``attempts`` times in all."""

    def __init__(
        self,
        attempts: int,
        *,
        wait: Wait | None = None,
        on_exhausted: Decision = Decision.REVERT,
        retry_on: Sequence[type[BaseException] | str] = (),
    ) -> None:
        if not isinstance(attempts, int) or attempts < 1:
            raise InvalidTaskError(f"Times(attempts) must be an int >= 1, got {attempts!r}")
        super().__init__(wait=wait, on_exhausted=on_exhausted, retry_on=retry_on)
        self.attempts = attempts

    def max_attempts(self, store: Mapping[str, Any]) -> int | None:
        return self.attempts

    def __repr__(self) -> str:
        return f"Times({self.attempts})"


class ForEach(Retry):
    """Run the scope once per value, providing the value under ``provides``, until one works."""

    def __init__(
        self,
        values: Sequence[Any],
        *,
        provides: str = "value",
        wait: Wait | None = None,
        on_exhausted: Decision = Decision.REVERT,
        retry_on: Sequence[type[BaseException] | str] = (),
    ) -> None:
        if not values:
            raise InvalidTaskError("ForEach needs at least one value")
        super().__init__(wait=wait, on_exhausted=on_exhausted, retry_on=retry_on)
        self.values = list(values)
        self.provides = (provides,)

    def _values(self, store: Mapping[str, Any]) -> Sequence[Any]:
        return self.values

    def max_attempts(self, store: Mapping[str, Any]) -> int | None:
        return len(self._values(store))

    def value(self, attempt: int, store: Mapping[str, Any]) -> Mapping[str, Any]:
        values = self._values(store)
        return {self.provides[0]: values[min(attempt, len(values)) - 1]}


class ParameterizedForEach(ForEach):
    """Like :class:`ForEach`, with the values taken from the store under ``requires``."""

    def __init__(
        self,
        requires: str,
        *,
        provides: str = "value",
        wait: Wait | None = None,
        on_exhausted: Decision = Decision.REVERT,
        retry_on: Sequence[type[BaseException] | str] = (),
    ) -> None:
        super().__init__(
            [None], provides=provides, wait=wait, on_exhausted=on_exhausted, retry_on=retry_on
        )
        self.requires = (requires,)

    def _values(self, store: Mapping[str, Any]) -> Sequence[Any]:
        values = store.get(self.requires[0])
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(
                f"ParameterizedForEach needs a non-empty list under {self.requires[0]!r}"
            )
        return values
