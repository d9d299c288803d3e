"""One boundary for errors: flowcoord errors and bad input become JSON ``{error, hint}``."""

from __future__ import annotations

import json
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .._model._registry import UnknownFlow
from ..errors import (
    ConfigurationError,
    CoordinationError,
    EncodingError,
    FlowcoordError,
    FlowDefinitionError,
    FlowExists,
    FlowFinished,
    FlowNotFound,
    FlowOwned,
    FlowRunning,
    InvalidStateTransition,
    JobAlreadyClaimed,
    JobKeyConflict,
    JobNotFound,
    JournalCorrupt,
    JournalError,
    OwnershipLost,
    UnknownQueue,
)

__all__ = ["ApiError", "dumps", "error_middleware", "json_error", "status_for"]

log = structlog.get_logger("flowcoord.aiohttp")

# Most specific first: the first match wins.
_STATUS: tuple[tuple[type[Exception], int, str], ...] = (
    (UnknownFlow, 422, "GET the registry endpoint for the registered flow names"),
    (FlowRunning, 409, "watch it with GET .../flows/{id}"),
    (FlowDefinitionError, 422, "fix the flow's inputs or definition"),
    (ConfigurationError, 400, "fix the option's value"),
    (EncodingError, 422, "send JSON-compatible values"),
    (FlowNotFound, 404, "list flows with GET /flows"),
    (FlowExists, 409, "use another flow_id, or omit it to get a fresh one"),
    (FlowFinished, 409, "submit the flow again with POST .../flows"),
    (InvalidStateTransition, 409, "reload the flow's status and try again"),
    (OwnershipLost, 409, "another engine owns the flow now"),
    # The journal holds an entry flowcoord cannot have written: retrying will not help.
    (JournalCorrupt, 500, "repair or delete the flow's corrupt journal entry"),
    (JournalError, 503, "the journal store is unavailable; retry later"),
    (FlowOwned, 409, "wait for the owner, or send force=true to fence it out"),
    (JobNotFound, 404, "list the board's jobs with GET .../jobs, its trash with GET .../trash"),
    (JobAlreadyClaimed, 409, "cancel or stop the job's flow first; its worker then releases it"),
    (JobKeyConflict, 409, "post under another key, or the same flow and inputs"),
    (UnknownQueue, 404, "GET .../queues lists the declared queues"),
    (CoordinationError, 503, "the coordination service is unavailable; retry later"),
    (FlowcoordError, 400, "see the error message"),
    (ValueError, 400, "check the request"),
)


class ApiError(Exception):
    """An HTTP error with a JSON body, raised by handlers for bad requests."""

    def __init__(
        self,
        status: int,
        error: str,
        hint: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.hint = hint
        self.headers = headers or {}
        self.extra = extra


def _fallback(value: object) -> str:
    return repr(value)


def dumps(value: Any) -> str:
    """JSON text; values JSON cannot carry are shown by their ``repr``."""
    return json.dumps(value, default=_fallback, ensure_ascii=False, allow_nan=False)


def json_error(status: int, error: str, hint: str | None = None, **extra: Any) -> web.Response:
    """An error answer in the API's shape: JSON ``{"error": ..., "hint": ..., **extra}``
    (what went wrong, what to do about it) with ``status``."""
    body: dict[str, Any] = {"error": error, "hint": hint}
    body.update(extra)
    return web.json_response(body, status=status, dumps=dumps)


def status_for(exc: Exception) -> tuple[int, str]:
    for kind, status, hint in _STATUS:
        if isinstance(exc, kind):
            return status, hint
    return 500, "see the server log"


def error_middleware(prefix: str) -> Middleware:
    """Turn errors raised under ``prefix`` into JSON; other paths are left alone."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if not (path == prefix or path.startswith(prefix + "/")):
            return await handler(request)
        try:
            return await handler(request)
        except ApiError as exc:
            resp = json_error(exc.status, exc.error, exc.hint, **exc.extra)
            resp.headers.update(exc.headers)
            return resp
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            hint = None
            if exc.status == 404:
                hint = f"the API lives under {prefix}/flows"
            elif exc.status == 405:
                hint = f"allowed: {', '.join(sorted(getattr(exc, 'allowed_methods', ())))}"
            resp = json_error(exc.status, exc.reason, hint)
            for name in ("Allow", "WWW-Authenticate"):
                if name in exc.headers:
                    resp.headers[name] = exc.headers[name]
            return resp
        except (FlowcoordError, ValueError) as exc:
            status, default_hint = status_for(exc)
            hint = getattr(exc, "hint", None) or default_hint
            extra: dict[str, Any] = {"type": type(exc).__name__}
            flow_id = getattr(exc, "flow_id", None)
            if flow_id:
                extra["flow_id"] = flow_id
            if isinstance(exc, JournalCorrupt):  # which entry: what the message says, as data
                extra.update(seq=exc.seq, kind=exc.kind, task=exc.task)
            elif isinstance(exc, FlowOwned):  # who holds it
                extra.update(owner=exc.owner, job_id=exc.job_id)
            elif isinstance(exc, JobKeyConflict):  # which key, and whose job it is
                extra.update(key=exc.key, job_id=exc.job_id, existing_flow=exc.existing_flow)
            elif isinstance(exc, UnknownQueue):
                extra.update(queue=exc.queue)
            message = getattr(exc, "message", None) or str(exc)
            if isinstance(exc, JournalCorrupt):
                log.error("api_journal_corrupt", path=path, error=str(exc))
            elif status >= 500:
                log.warning("api_unavailable", path=path, error=str(exc))
            return json_error(status, message, hint, **extra)
        except Exception:  # a bug: log it, show no traceback
            log.exception("api_internal_error", path=path, method=request.method)
            return json_error(500, "internal error", "see the server log for details")

    return middleware
