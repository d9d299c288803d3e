"""The JSON API's flow routes: submit, list, inspect, cancel, resume, suspend, stop and
retry flows (the request helpers they share with the other routes: :mod:`._requests`)."""

from __future__ import annotations

import contextlib

import anyio
from aiohttp import web

from .._engine._engine import FlowHandle
from .._ids import is_flow_id
from .._journal._contract import MAX_CURSOR
from .._model._graph_export import task_edges, to_dot
from .._states import is_finished
from .._views import entry_view, failed_tasks, record_view, task_states
from ._errors import ApiError
from ._layout import render_svg
from ._requests import (
    _FLOW_ID_HINT,
    _accepted,
    _authorize,
    _authorize_read,
    _body,
    _converted,
    _flow_id,
    _force,
    _int_query,
    _is_workflow,
    _json,
    _record,
    _states_query,
    _status,
    _take_over,
    _time_query,
    _wait_query,
)
from ._state import get_engine, state_of

__all__ = ["add_api_routes"]

_SUBMIT_KEYS = frozenset({"flow", "inputs", "flow_id"})


def add_api_routes(app: web.Application, prefix: str) -> None:
    p = prefix
    app.router.add_get(f"{p}/health", health)
    app.router.add_get(f"{p}/registry", registry_names)
    app.router.add_get(f"{p}/flows", list_flows)
    app.router.add_post(f"{p}/flows", submit)
    app.router.add_get(f"{p}/flows/{{flow_id}}", flow_status)
    app.router.add_get(f"{p}/flows/{{flow_id}}/journal", journal)
    app.router.add_get(f"{p}/flows/{{flow_id}}/graph.svg", graph_svg)
    app.router.add_get(f"{p}/flows/{{flow_id}}/graph.dot", graph_dot)
    app.router.add_post(f"{p}/flows/{{flow_id}}/cancel", cancel)
    app.router.add_post(f"{p}/flows/{{flow_id}}/resume", resume)
    app.router.add_post(f"{p}/flows/{{flow_id}}/suspend", suspend)
    app.router.add_post(f"{p}/flows/{{flow_id}}/stop", stop)
    app.router.add_post(f"{p}/flows/{{flow_id}}/retry", retry)


# -- reads ------------------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    engine = get_engine(request)
    return _json({"status": "ok", "running": len(engine.running)})


async def registry_names(request: web.Request) -> web.Response:
    _authorize_read(request)
    return _json({"flows": list(state_of(request).registry)})


async def list_flows(request: web.Request) -> web.Response:
    _authorize_read(request)
    engine = get_engine(request)
    states = _states_query(request)
    name = request.query.get("name") or None
    if name is not None and len(name) > 256:
        raise ApiError(400, "name= is too long", "send a flow name, * and ? as wildcards")
    since = _time_query(request, "since")
    until = _time_query(request, "until")
    limit = _int_query(request, "limit", 50, 1, 1000)
    after = request.query.get("after") or None
    if after is not None and len(after) > MAX_CURSOR:
        raise ApiError(400, "after= is too long", "pass the 'next' value of the previous page")
    page = await engine.backend.list_newest(
        limit=limit, cursor=after, name=name, states=states, since=since, until=until
    )
    flows = []
    for rec in page.flows:
        view = record_view(rec)
        view["running_here"] = engine.handle(rec.flow_id) is not None
        flows.append(view)
    return _json(
        {
            "flows": flows,
            "next": page.next,
            "limit": limit,
            "state": ",".join(states) if states else None,
            "name": name,
            "since": since,
            "until": until,
        }
    )


async def flow_status(request: web.Request) -> web.Response:
    _authorize_read(request)
    flow_id = _flow_id(request)
    return _json(await _status(state_of(request), get_engine(request), flow_id, here=True))


async def journal(request: web.Request) -> web.Response:
    _authorize_read(request)
    flow_id = _flow_id(request)
    engine = get_engine(request)
    after = _int_query(request, "after_seq", -1, -1, 2**62)
    limit = _int_query(request, "limit", 1000, 1, 10000)
    entries = await engine.backend.read(flow_id, after_seq=after)
    if not entries and after < 0:
        await _record(engine, flow_id)  # 404 if there is no such flow
    page = entries[:limit]
    shown = state_of(request).values
    return _json(
        {
            "flow_id": flow_id,
            "entries": [shown.entry(entry_view(e)) for e in page],
            "next_seq": page[-1].seq if len(entries) > limit else None,
        }
    )


async def graph_svg(request: web.Request) -> web.Response:
    _authorize_read(request)
    flow_id = _flow_id(request)
    st = state_of(request)
    engine = get_engine(request)
    rep = await engine.status(flow_id)
    plan = st.plan(rep.name)
    nodes = list(rep.task_names)
    edges: list[tuple[str, str]] = []
    if plan is not None:
        edges = list(task_edges(plan))
        nodes += [n for n in plan.task_names if n not in nodes]
    svg = render_svg(
        nodes,
        edges,
        states=task_states(rep),
        title=f"{rep.name} ({flow_id})",
        failed=failed_tasks(rep),
    )
    return web.Response(
        text=svg, content_type="image/svg+xml", headers={"Cache-Control": "no-store"}
    )


async def graph_dot(request: web.Request) -> web.Response:
    _authorize_read(request)
    flow_id = _flow_id(request)
    st = state_of(request)
    engine = get_engine(request)
    rep = await engine.status(flow_id)
    plan = st.plan(rep.name)
    if plan is None and _is_workflow(st, rep.name):
        raise ApiError(
            422,
            f"flow {rep.name!r} is a workflow: its steps are code, it has no graph",
            "see its steps in GET .../flows/{id} (the dashboard draws them as a timeline)",
        )
    if plan is None:
        raise ApiError(
            422,
            f"flow {rep.name!r} is not registered on this server; its edges are unknown",
            "register the flow in the server's registry, or use graph.svg (nodes only)",
        )
    dot = to_dot(plan, states=task_states(rep))
    return web.Response(
        text=dot, content_type="text/vnd.graphviz", headers={"Cache-Control": "no-store"}
    )


# -- mutations --------------------------------------------------------------------------------


async def submit(request: web.Request) -> web.Response:
    """``POST /flows {flow, inputs, flow_id?}`` → 202 (or 200 when it finished within
    ``?wait=`` seconds, or when ``flow_id`` names a flow that has already finished). A
    ``flow_id`` naming an unfinished journaled flow takes it over and resumes it, with its
    journaled inputs (as ``POST .../resume`` does: ``?force=true`` with a board)."""
    _authorize(request)
    st = state_of(request)
    body = await _body(request)
    unknown = sorted(set(body) - _SUBMIT_KEYS)
    if unknown:
        raise ApiError(400, f"unknown field(s) {unknown}", "send {flow, inputs, flow_id?}")
    name = body.get("flow")
    if not isinstance(name, str) or not name:
        raise ApiError(
            400,
            "field 'flow' must be the name of a registered flow",
            'send {"flow": "<name>", "inputs": {...}}',
            registered=list(st.registry),
        )
    inputs = body.get("inputs", {})
    if inputs is None:
        inputs = {}
    if not isinstance(inputs, dict):
        raise ApiError(400, "field 'inputs' must be a JSON object", "send inputs as {name: value}")
    flow_id = body.get("flow_id")
    if flow_id is not None and not is_flow_id(flow_id):
        raise ApiError(400, f"invalid flow_id {flow_id!r}", _FLOW_ID_HINT)
    wait = _wait_query(request)
    force = _force(request, {})
    engine = get_engine(request)
    flow = st.registry.build(name)
    handle: FlowHandle | None = None
    if flow_id is not None:
        if engine.handle(flow_id) is not None:
            raise ApiError(
                409, f"flow {flow_id} is already running here", "watch it with GET .../flows/{id}"
            )
        rec = await engine.backend.get_flow(flow_id)
        if rec is not None:
            if rec.name != name:
                raise ApiError(
                    409,
                    f"flow id {flow_id} is taken by a {rec.name!r} flow",
                    "use another flow_id, or omit it to get a fresh one",
                )
            if is_finished(rec.state):
                view = record_view(rec)
                view["url"] = f"{st.prefix}/flows/{flow_id}"
                return _json(view, 200)
            handle = await _take_over(st, engine, rec, cancel=False, force=force)
    resumed = handle is not None
    if handle is None:
        handle = await engine.start(flow, _converted(flow, inputs), flow_id=flow_id)
    if wait > 0:
        with anyio.move_on_after(wait):
            with contextlib.suppress(Exception):  # a failure is reported by the status below
                await handle.wait()
        if handle.done:
            view = await _status(st, engine, handle.flow_id, here=False)
            view["url"] = f"{st.prefix}/flows/{handle.flow_id}"
            return _json(view, 200)
    return _accepted(st, handle, "resumed" if resumed else "started")


async def cancel(request: web.Request) -> web.Response:
    """Cancel: running tasks are cancelled and completed ones reverted. A journaled flow that
    this engine does not run is taken over (with its registered flow) to revert it; with a
    job board, not from a live owner unless ``?force=true`` or ``{"force": true}``."""
    _authorize(request)
    flow_id = _flow_id(request)
    st = state_of(request)
    force = _force(request, await _body(request))
    engine = get_engine(request)
    handle = engine.handle(flow_id)
    if handle is not None:
        handle.cancel()
    else:
        rec = await _record(engine, flow_id)
        handle = await _take_over(st, engine, rec, cancel=True, force=force)
    return _accepted(st, handle, "cancelling")


async def resume(request: web.Request) -> web.Response:
    """Resume a suspended flow running here, or take a stopped/suspended/crashed flow over
    from its journal with the registered flow of its name; with a job board, not from a live
    owner unless ``?force=true`` or ``{"force": true}``."""
    _authorize(request)
    flow_id = _flow_id(request)
    st = state_of(request)
    force = _force(request, await _body(request))
    engine = get_engine(request)
    handle = engine.handle(flow_id)
    if handle is not None:
        handle.resume()
        return _accepted(st, handle, "resumed")
    rec = await _record(engine, flow_id)
    handle = await _take_over(st, engine, rec, cancel=False, force=force)
    return _accepted(st, handle, "resumed")


def _running_handle(request: web.Request, flow_id: str) -> FlowHandle:
    handle = get_engine(request).handle(flow_id)
    if handle is None:
        raise ApiError(
            409,
            f"flow {flow_id} is not running on this server",
            "only flows running here can be suspended or stopped; see GET .../flows/{id}",
        )
    return handle


async def _control(request: web.Request, action: str) -> web.Response:
    _authorize(request)
    handle = _running_handle(request, _flow_id(request))
    if action == "suspending":
        handle.suspend()
    else:
        handle.stop()
    return _accepted(state_of(request), handle, action)


async def suspend(request: web.Request) -> web.Response:
    """Start no new task; the flow waits in SUSPENDED until resumed."""
    return await _control(request, "suspending")


async def stop(request: web.Request) -> web.Response:
    """Let running tasks finish, then leave the flow SUSPENDED in the journal (resumable)."""
    return await _control(request, "stopping")


async def retry(request: web.Request) -> web.Response:
    """``POST /flows/{id}/retry {"from_task": name, "flow_id"?: new id}``: start a new flow
    that re-runs the finished flow ``id`` from ``from_task`` on, reusing the journaled results
    of the tasks before it that still stand (see :meth:`flowcoord.Engine.fork`)."""
    _authorize(request)
    flow_id = _flow_id(request)
    st = state_of(request)
    engine = get_engine(request)
    body = await _body(request)
    task = body.get("from_task")
    if not isinstance(task, str) or not task:
        raise ApiError(
            400, "field 'from_task' must name a task of the flow", 'send {"from_task": "<task>"}'
        )
    new_id = body.get("flow_id")
    if new_id is not None and not is_flow_id(new_id):
        raise ApiError(400, f"invalid new flow id {str(new_id)[:60]!r}", _FLOW_ID_HINT)
    rep = await engine.status(flow_id)
    names = rep.task_names or list(rep.tasks)  # a workflow lists no tasks: its step keys
    if task not in names:
        raise ApiError(
            422, f"flow {flow_id} has no task {task!r}", f"tasks: {', '.join(names)[:2000]}"
        )
    if not is_finished(rep.state.value) or engine.handle(flow_id) is not None:
        raise ApiError(
            409,
            f"flow {flow_id} has not finished ({rep.state.value})",
            "resume an unfinished flow with POST .../resume; retry is for finished flows",
        )
    handle = await engine.fork(st.registry.build(rep.name), flow_id, from_task=task, flow_id=new_id)
    return _accepted(st, handle, "retrying")
