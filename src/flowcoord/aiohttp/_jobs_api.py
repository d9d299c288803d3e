"""The JSON API of the job board: its jobs, queues, members and trash, posting under an
idempotency key, and an operator's trash, requeue and purge.

Everything here asks the board (:class:`~flowcoord.coordination.JobBoard`): what may be
trashed, what a requeue posts, what a repeated key answers are its rules; the shapes are
:mod:`flowcoord._job_views`'. An app without a board answers 501 (``flowcoord serve --zk``
gives it one).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from aiohttp import web

from .._coord._contract import JobBoard
from .._ids import FLOW_ID_RULE, is_flow_id
from .._job_views import job_view, members_overview, queues_overview, trashed_view
from ..errors import UnknownQueue
from ._errors import ApiError
from ._requests import _authorize, _authorize_read, _body, _converted, _int_query, _json
from ._state import AppState, state_of

__all__ = ["add_job_routes"]

_POST_KEYS = frozenset(
    {"flow", "inputs", "flow_id", "key", "priority", "queue", "not_before", "partition", "headers"}
)
_MAX_REASON = 2000


def add_job_routes(app: web.Application, prefix: str) -> None:
    p = prefix
    app.router.add_get(f"{p}/jobs", list_jobs)
    app.router.add_post(f"{p}/jobs", post_job)
    app.router.add_get(f"{p}/jobs/{{job_id}}", get_job)
    app.router.add_post(f"{p}/jobs/{{job_id}}/trash", trash_job)
    app.router.add_get(f"{p}/queues", list_queues)
    app.router.add_get(f"{p}/members", list_members)
    app.router.add_get(f"{p}/trash", list_trash)
    app.router.add_post(f"{p}/trash/purge", purge_trash)
    app.router.add_post(f"{p}/trash/{{trash_id}}/requeue", requeue)


def _board(st: AppState) -> JobBoard:
    if st.board is not None:
        return st.board
    if st.make_board is not None:
        raise ApiError(503, "the job board is not open", "retry once the server has started")
    raise ApiError(
        501,
        "no job board: start serve with --zk",
        "flowcoord serve --zk HOST:PORT (or setup(board=...) / board_factory=...)",
    )


def _job(st: AppState, view: dict[str, Any]) -> dict[str, Any]:
    view["url"] = f"{st.prefix}/jobs/{view['job_id']}"
    return view


def _time_field(body: dict[str, Any], name: str) -> float | None:
    """A time in a body: epoch seconds, or an ISO 8601 time (local to the server when it
    names no zone); null or absent for none."""
    raw = body.get(name)
    if raw is None:
        return None
    if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw):
        return float(raw)
    if isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw.strip()).timestamp()
        except ValueError:
            pass
    raise ApiError(
        400,
        f"field {name!r} is not a time: {str(raw)[:40]!r}",
        "send epoch seconds, or an ISO 8601 time such as 2024-05-01T12:00:00+02:00",
    )


# -- reads ------------------------------------------------------------------------------------


async def list_jobs(request: web.Request) -> web.Response:
    """``GET /jobs?queue=&limit=``: the jobs on the board, in claim order."""
    _authorize_read(request)
    st = state_of(request)
    board = _board(st)
    queue = request.query.get("queue") or None
    limit = _int_query(request, "limit", 100, 1, 10000)
    jobs = await board.jobs(queue=queue, limit=limit)
    views = [_job(st, job_view(j, st.values)) for j in jobs]
    return _json({"jobs": views, "queue": queue, "limit": limit, "more": len(views) == limit})


async def get_job(request: web.Request) -> web.Response:
    _authorize_read(request)
    st = state_of(request)
    job = await _board(st).get(request.match_info["job_id"])
    return _json(_job(st, job_view(job, st.values)))


async def list_queues(request: web.Request) -> web.Response:
    """Each queue's limits, waiting and running jobs (and who holds them), its servers."""
    _authorize_read(request)
    st = state_of(request)
    limit = _int_query(request, "limit", 1000, 1, 10000)
    overview = await queues_overview(_board(st), limit=limit, values=st.values)
    for q in overview["queues"]:
        q["running"] = [_job(st, j) for j in q["running"]]
    return _json(overview)


async def list_members(request: web.Request) -> web.Response:
    _authorize_read(request)
    st = state_of(request)
    members = await members_overview(_board(st), st.values)
    for m in members:
        m["jobs"] = [_job(st, j) for j in m["jobs"]]
    return _json({"members": members})


async def list_trash(request: web.Request) -> web.Response:
    _authorize_read(request)
    st = state_of(request)
    entries = await _board(st).trashed()
    return _json({"trash": [trashed_view(t, st.values) for t in entries]})


# -- changes ----------------------------------------------------------------------------------


async def post_job(request: web.Request) -> web.Response:
    """``POST /jobs {flow, inputs, flow_id?, key?, priority?, queue?, not_before?}`` → 201
    with the job; 200 with the job its key names when the key was posted before
    (``deduplicated``); 409 when that job runs another flow or other inputs."""
    _authorize(request)
    st = state_of(request)
    board = _board(st)
    body = await _body(request)
    unknown = sorted(set(body) - _POST_KEYS)
    if unknown:
        raise ApiError(
            400,
            f"unknown field(s) {unknown}",
            "send {flow, inputs, flow_id?, key?, priority?, queue?, not_before?, partition?, "
            "headers?}",
        )
    name = body.get("flow")
    if not isinstance(name, str) or not name:
        raise ApiError(
            400,
            "field 'flow' must be the name of a registered flow",
            'send {"flow": "<name>", "inputs": {...}}',
            registered=list(st.registry),
        )
    inputs = body.get("inputs") or {}
    if not isinstance(inputs, dict):
        raise ApiError(400, "field 'inputs' must be a JSON object", "send inputs as {name: value}")
    flow_id = body.get("flow_id")
    if flow_id is not None and not is_flow_id(flow_id):
        raise ApiError(
            400, f"invalid flow_id {str(flow_id)[:60]!r}", f"a flow id is {FLOW_ID_RULE}"
        )
    key = body.get("key")
    if key is not None and not isinstance(key, str):
        raise ApiError(400, "field 'key' must be a string", "send the request's idempotency key")
    priority = body.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ApiError(400, "field 'priority' must be an integer", "higher runs first")
    queue = body.get("queue", "default")
    if not isinstance(queue, str):
        raise ApiError(400, "field 'queue' must be a queue's name", "GET .../queues lists them")
    not_before = _time_field(body, "not_before")
    partition = body.get("partition")  # checked by the board (400 when bad)
    headers = body.get("headers")
    if headers is not None and not isinstance(headers, dict):
        raise ApiError(400, "field 'headers' must be a JSON object", "send {name: text}")
    headers = _with_trace(request, headers)
    flow = st.registry.build(name)  # an unregistered name: 422
    converted = _converted(flow, inputs)
    try:
        job = await board.post(
            name,
            converted,
            flow_id=flow_id,
            priority=priority,
            queue=queue,
            key=key,
            not_before=not_before,
            partition=partition,
            headers=headers,
        )
    except UnknownQueue as exc:
        raise ApiError(422, exc.message, exc.hint, type="UnknownQueue", queue=exc.queue) from None
    view = _job(st, job_view(job, st.values))
    if job.deduplicated:
        return _json(view, 200)
    return _json(view, 201, headers={"Location": view["url"]})


async def trash_job(request: web.Request) -> web.Response:
    """``POST /jobs/{id}/trash {"reason": ...}``: a waiting job nobody holds to the trash."""
    _authorize(request)
    st = state_of(request)
    board = _board(st)
    body = await _body(request)
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ApiError(400, "field 'reason' must say why", 'send {"reason": "..."}')
    entry = await board.trash_job(request.match_info["job_id"], reason.strip()[:_MAX_REASON])
    return _json(trashed_view(entry, st.values))


async def requeue(request: web.Request) -> web.Response:
    """``POST /trash/{trash_id}/requeue``: post the trashed job again (201, the job)."""
    _authorize(request)
    st = state_of(request)
    job = await _board(st).requeue(request.match_info["trash_id"])
    view = _job(st, job_view(job, st.values))
    return _json(view, 201, headers={"Location": view["url"]})


async def purge_trash(request: web.Request) -> web.Response:
    """``POST /trash/purge {"before"?: time}``: delete trash entries (all, or older ones)."""
    _authorize(request)
    st = state_of(request)
    board = _board(st)
    body = await _body(request)
    unknown = sorted(set(body) - {"before"})
    if unknown:
        raise ApiError(400, f"unknown field(s) {unknown}", 'send {} or {"before": <time>}')
    before = _time_field(body, "before")
    return _json({"purged": await board.purge_trash(before=before), "before": before})


def _with_trace(request: web.Request, headers: dict[str, Any] | None) -> dict[str, Any] | None:
    """The job's headers, with the request's W3C trace context (``traceparent``,
    ``tracestate``) when the body gives none: the flow is traced under the caller's span."""
    if headers is not None and "traceparent" in headers:
        return headers
    trace = {k: request.headers[k] for k in ("traceparent", "tracestate") if k in request.headers}
    if not trace:
        return headers
    return {**(headers or {}), **trace}
