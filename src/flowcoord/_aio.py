"""Small structured-concurrency helpers shared by the engine and the conductor."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from types import TracebackType

import anyio
from anyio.abc import TaskGroup

__all__ = ["close_task_group", "running_in_background"]


@asynccontextmanager
async def running_in_background(
    run: Callable[[], Coroutine[object, object, object]],
) -> AsyncIterator[None]:
    """Run ``run()`` in a task while the block runs; cancel it when the block ends."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        try:
            yield
        finally:
            tg.cancel_scope.cancel()


async def close_task_group(
    tg: TaskGroup,
    exc_type: type[BaseException] | None,
    exc: BaseException | None,
    tb: TracebackType | None,
) -> bool | None:
    """Leave ``tg`` on behalf of an ``async with`` block that owns it.

    If the block raised an ordinary exception, the background tasks are cancelled and the
    exception passes through as it is, instead of wrapped in an ``ExceptionGroup``.
    Cancellation is handed to the task group so cancel scopes keep their meaning.
    """
    if exc is not None and not isinstance(exc, anyio.get_cancelled_exc_class()):
        tg.cancel_scope.cancel()
        await tg.__aexit__(None, None, None)
        return None
    return await tg.__aexit__(exc_type, exc, tb)
