"""Small structured-concurrency helpers shared by the engine and the conductor."""

from __future__ import annotations

from types import TracebackType

import anyio
from anyio.abc import TaskGroup

__all__ = ["close_task_group"]


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
