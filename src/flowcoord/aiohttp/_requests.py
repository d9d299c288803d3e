"""What the JSON API's routes share: answers, the token check, parsing a request's path,
query and body, converting inputs, and the flow status and take-over they build on."""

from __future__ import annotations

import argparse
import hmac
import json
import math
from typing import Any

from aiohttp import web

from .._args import since as parse_since
from .._coord._contract import JobBoard
from .._coord._takeover import take_over
from .._engine._engine import Engine, FlowHandle
from .._ids import FLOW_ID_RULE, is_flow_id
from .._journal._events import FlowRecord
from .._journal._replay import replay
from .._model._flow import Flow
from .._model._inputs import convert_inputs, flow_inputs
from .._model._workflow import Workflow
from .._states import FlowState
from .._views import status_view
from ..errors import FlowcoordError, FlowDefinitionError, FlowNotFound
from ._errors import ApiError, dumps
from ._state import AppState, state_of

__all__ = [
    "_FLOW_ID_HINT",
    "_MAX_WAIT",
    "_STATES",
    "_accepted",
    "_authorize",
    "_authorize_read",
    "_board",
    "_body",
    "_converted",
    "_flow_id",
    "_force",
    "_int_query",
    "_is_workflow",
    "_json",
    "_record",
    "_states_query",
    "_status",
    "_take_over",
    "_time_query",
    "_wait_query",
]

_FLOW_ID_HINT = f"a flow id is {FLOW_ID_RULE}"
_MAX_WAIT = 300.0
_STATES = ", ".join(s.value for s in FlowState)


# -- helpers ----------------------------------------------------------------------------------


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    resp = web.json_response(data, status=status, dumps=dumps, headers=headers)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _authorize(request: web.Request) -> None:
    """Check ``Authorization: Bearer <token>`` (constant-time). 401 missing, 403 wrong."""
    token = state_of(request).token
    if token is None:
        return
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        raise ApiError(
            401,
            "authentication required",
            "send the header 'Authorization: Bearer <token>' with the server's token",
            headers={"WWW-Authenticate": 'Bearer realm="flowcoord"'},
        )
    if not hmac.compare_digest(value.encode("utf-8"), token.encode("utf-8")):
        raise ApiError(
            403,
            "invalid token",
            "use the token the server was started with",
            headers={"WWW-Authenticate": 'Bearer realm="flowcoord", error="invalid_token"'},
        )


def _authorize_read(request: web.Request) -> None:
    if state_of(request).protect_reads:
        _authorize(request)


def _flow_id(request: web.Request) -> str:
    flow_id = request.match_info["flow_id"]
    if not is_flow_id(flow_id):
        raise ApiError(400, f"invalid flow id {flow_id!r}", _FLOW_ID_HINT)
    return flow_id


def _int_query(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name}={raw!r} is not an integer", f"use {lo}..{hi}") from None
    if not lo <= value <= hi:
        raise ApiError(400, f"{name}={value} is out of range", f"use {lo}..{hi}")
    return value


def _wait_query(request: web.Request) -> float:
    raw = request.query.get("wait")
    if raw is None or raw == "":
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value <= _MAX_WAIT:
        raise ApiError(400, f"wait={raw!r} is not a number of seconds", f"use 0..{_MAX_WAIT:g}")
    return value


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json(loads=json.loads)
    except ValueError as exc:
        raise ApiError(
            400, f"the request body is not valid JSON: {exc}", "send a JSON object"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ApiError(
            400,
            f"the request body must be a JSON object, got {type(data).__name__}",
            "send a JSON object",
        )
    return data


async def _record(engine: Engine, flow_id: str) -> FlowRecord:
    rec = await engine.backend.get_flow(flow_id)
    if rec is None:
        raise ApiError(404, f"no flow {flow_id!r} in the journal", "list flows with GET .../flows")
    return rec


_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no", ""})


def _force(request: web.Request, body: dict[str, Any]) -> bool:
    """``?force=true`` or ``{"force": true}``: take over even from a live owner."""
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise ApiError(400, "field 'force' must be true or false", 'send {"force": true}')
    raw = request.query.get("force")
    if raw is not None:
        if raw.lower() not in _TRUE | _FALSE:
            raise ApiError(400, f"force={raw[:20]!r} is not true or false", "use force=true")
        force = force or raw.lower() in _TRUE
    return force


def _board(st: AppState) -> JobBoard | None:
    """The job board whose live claims a take-over respects (None: the journal fence only)."""
    if st.board is None and st.make_board is not None:
        raise ApiError(503, "the job board is not open", "retry once the server has started")
    return st.board


def _accepted(st: AppState, handle: FlowHandle, action: str, status: int = 202) -> web.Response:
    url = f"{st.prefix}/flows/{handle.flow_id}"
    body = {
        "flow_id": handle.flow_id,
        "name": handle.name,
        "state": handle.state.value,
        "action": action,
        "url": url,
    }
    return _json(body, status, headers={"Location": url})


async def _take_over(
    st: AppState, engine: Engine, rec: FlowRecord, *, cancel: bool, force: bool
) -> FlowHandle:
    """Take over a journaled, unfinished flow that this engine does not run, with the
    registered flow of its name (:func:`flowcoord.coordination.take_over`): the journal is
    fenced, so a stale writer elsewhere is shut out; with a board, a flow a live member
    holds is FlowOwned (409) unless ``force``; a finished one is FlowFinished (409), one
    being started here FlowRunning (409)."""
    flow = st.registry.build(rec.name)
    return await take_over(engine, flow, rec.flow_id, board=_board(st), cancel=cancel, force=force)


def _is_workflow(st: AppState, name: str) -> bool:
    """Whether ``name`` is registered here as a workflow."""
    if name not in st.registry:
        return False
    try:
        return isinstance(st.registry.build(name), Workflow)
    except FlowcoordError:
        return False


async def _status(st: AppState, engine: Engine, flow_id: str, *, here: bool) -> dict[str, Any]:
    """The flow's status view, from one read of its journal: a workflow's has its steps;
    its values as the app shows them (redacted, cut). ``here``: say whether this engine
    runs it (and its handle's state)."""
    entries = await engine.journal.read(flow_id)
    if not entries:
        raise FlowNotFound(f"no flow {flow_id!r} in the journal", flow_id=flow_id)
    rep = replay(flow_id, entries, engine.codec)  # what engine.status does, on these entries
    rec = await engine.backend.get_flow(flow_id)
    handle = engine.handle(flow_id) if here else None
    view = status_view(
        rep,
        rec,
        running_here=handle is not None,
        live_state=handle.state.value if handle is not None else None,
        entries=entries,
        codec=engine.codec,
    )
    return st.values.status(view)


def _states_query(request: web.Request) -> list[str] | None:
    """``?state=``: one flow state or several, comma-separated, any case."""
    raw = request.query.get("state") or ""
    if not raw.strip():
        return None
    out = []
    for part in raw.split(","):
        state = part.strip().upper()
        if state not in FlowState.__members__:
            raise ApiError(400, f"unknown state {part.strip()[:40]!r}", f"use one of {_STATES}")
        if state not in out:
            out.append(state)
    return out


def _time_query(request: web.Request, name: str) -> float | None:
    """``?since=`` / ``?until=``: epoch seconds, an ISO 8601 time (the server's local time
    when it names no zone), or a time ago: ``30s``, ``10m``, ``2h``, ``3d``, ``1w``."""
    raw = (request.query.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        try:
            return parse_since(raw).cutoff()
        except argparse.ArgumentTypeError:
            raise ApiError(
                400,
                f"{name}={raw[:40]!r} is not a time",
                "send epoch seconds, an ISO 8601 time such as 2024-05-01T12:00+02:00, or "
                "a time ago such as 10m, 2h, 3d",
            ) from None
    if not math.isfinite(value):
        raise ApiError(400, f"{name}={raw[:40]!r} is not a time", "send epoch seconds")
    return value


def _converted(flow: Flow | Workflow, inputs: dict[str, Any]) -> dict[str, Any]:
    """``inputs`` converted to the annotations of the flow's tasks (``"2"`` for an ``int``
    is 2): 422 naming the input that does not fit, or the names the flow does not take."""
    spec = flow_inputs(flow)  # a flow that does not compile raises what compiling does: 422
    try:
        return convert_inputs(spec, inputs)
    except FlowDefinitionError as exc:
        known = sorted(spec.specs)
        unknown = [n for n in inputs if n not in spec.specs]
        if unknown and not spec.open:
            raise ApiError(
                422,
                exc.message,
                f"send only the inputs the flow takes: {', '.join(known) or 'none'}",
                type="FlowDefinitionError",
                unknown=sorted(unknown),
                known=known,
            ) from None
        name = exc.names[0] if exc.names else ""
        expected = spec.specs[name].type_name if name in spec.specs else ""
        raise ApiError(
            422,
            exc.message,
            f"send {name!r} as {expected}" if expected else "fix the input's value",
            type="FlowDefinitionError",
            input=name,
            expected=expected,
        ) from None
