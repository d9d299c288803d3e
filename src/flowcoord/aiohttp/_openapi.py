"""The JSON API as an OpenAPI 3.1 document, served at ``GET {prefix}/openapi.json``.

A description only: the routes and their checks live in ``_api``. The document's paths carry
the app's prefix, and its security says what this app asks for (a token for changes, and for
reads too with ``protect_reads``). ``docs/reference/http.md`` is the prose twin of this
document; ``tests/unit/test_openapi.py`` checks that every route is in both.
"""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from .. import __version__
from .._ids import FLOW_ID_RULE
from .._journal._sent import TOPIC_RULE
from .._states import FlowState, TaskState
from ._errors import dumps
from ._jobs_openapi import JOB_SCHEMAS, job_operations
from ._schema import error as _error
from ._schema import json_body as _json_body
from ._schema import nullable as _nullable
from ._schema import obj as _obj
from ._schema import query as _query
from ._schema import ref as _ref
from ._state import state_of

__all__ = ["add_openapi_route", "build_openapi"]

_JSON = "application/json"
_FLOW_STATES = [s.value for s in FlowState]
_TASK_STATES = [s.value for s in TaskState]
_STEP_STATES = ["PENDING", "RUNNING", "SUCCESS", "FAILURE", "INTERRUPTED"]
_REVERT_STATES = ["REVERTING", "REVERTED", "REVERT_FAILURE", None]


_FAILURE: dict[str, Any] = {
    "type": ["object", "null"],
    "description": "A task's failure as journaled (null when there is none).",
    "properties": {
        "type": {"type": "string", "description": "the exception's class name"},
        "types": {"type": "array", "items": {"type": "string"}, "description": "its MRO"},
        "message": {"type": "string"},
        "traceback": {"type": ["string", "null"]},
        "cause": {"$ref": "#/components/schemas/Failure"},
    },
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "hint"],
        "description": "Every error answer under the prefix. Errors raised by flowcoord add "
        "`type` (the exception's class name) and `flow_id`; a `JournalCorrupt` adds `seq`, "
        "`kind` and `task`, a `FlowOwned` `owner` and `job_id`; a submit without a flow name "
        "adds `registered`; inputs refused on submit add `input` and `expected` (a value "
        "that does not fit its annotation) or `unknown` and `known` (names the flow does not "
        "take, and those it does).",
        "properties": {
            "error": {"type": "string", "description": "what went wrong"},
            "hint": {"type": ["string", "null"], "description": "what to do about it"},
            "type": {"type": "string"},
            "flow_id": {"type": "string"},
            "seq": {"type": ["integer", "null"]},
            "kind": {"type": ["string", "null"]},
            "task": {"type": ["string", "null"]},
            "registered": {"type": "array", "items": {"type": "string"}},
            "owner": {"type": "string", "description": "the live member holding the flow"},
            "job_id": {"type": "string"},
            "input": {"type": "string", "description": "the input whose value does not fit"},
            "expected": {"type": "string", "description": "its annotation, e.g. `int`"},
            "unknown": {"type": "array", "items": {"type": "string"}},
            "known": {"type": "array", "items": {"type": "string"}},
            "key": {"type": "string", "description": "(JobKeyConflict) the key taken"},
            "existing_flow": {"type": "string", "description": "(JobKeyConflict) its job's flow"},
            "queue": {"type": "string", "description": "(UnknownQueue) the queue asked for"},
        },
    },
    "Failure": _FAILURE,
    "FlowRecord": _obj(
        ["flow_id", "name", "state", "finished", "token", "created_at", "updated_at"],
        flow_id={"type": "string"},
        name={"type": "string", "description": "the flow's (registered) name"},
        state={"type": "string", "enum": _FLOW_STATES},
        finished={"type": "boolean"},
        token={"type": "integer", "description": "the flow's current fencing token"},
        created_at=_nullable("number", description="Unix time"),
        updated_at=_nullable("number", description="Unix time"),
        running_here={"type": "boolean", "description": "(in lists) run by this server now"},
        url={"type": "string", "description": "(on submit) the flow's status URL"},
    ),
    "FlowList": _obj(
        ["flows", "next", "limit", "state", "name", "since", "until"],
        flows={
            "type": "array",
            "items": _ref("FlowRecord"),
            "description": "newest first (by creation time; then by flow id, descending)",
        },
        next=_nullable(
            "string",
            description="an opaque cursor: pass it as `after` for the next page (null on "
            "the last); the next page is the same whatever flows were added meanwhile",
        ),
        limit={"type": "integer"},
        state=_nullable("string", description="the states asked for, comma-separated"),
        name=_nullable("string", description="the name (pattern) asked for"),
        since=_nullable("number", description="created at or after (Unix time)"),
        until=_nullable("number", description="created before (Unix time)"),
    ),
    "Span": _obj(
        ["kind", "attempt", "state", "started_at", "finished_at"],
        kind={
            "type": "string",
            "enum": ["run", "revert"],
            "description": "one attempt of the task, or one revert of it",
        },
        attempt=_nullable("integer", description="the attempt it ran (or reverted)"),
        state={
            "type": "string",
            "enum": [
                "RUNNING",
                "SUCCESS",
                "FAILURE",
                "INTERRUPTED",
                "REVERTING",
                "REVERTED",
                "REVERT_FAILURE",
            ],
            "description": "INTERRUPTED: cut short, by a cancel, or started and never "
            "ended in a flow that has ended",
        },
        started_at=_nullable("number", description="Unix time; null when not journaled"),
        finished_at=_nullable("number", description="null while it runs"),
    ),
    "Summary": {
        **_obj(
            [
                "cause",
                "task",
                "failure",
                "attempt",
                "at",
                "failed",
                "reverted",
                "reverting",
                "revert_failed",
                "revert_started_at",
                "ended_at",
            ],
            cause=_nullable(
                "string",
                enum=["failure", "cancelled", None],
                description="a task failed it, or it was cancelled",
            ),
            task=_nullable("string", description="the first task (or step key) that failed"),
            failure=_ref("Failure"),
            attempt=_nullable("integer", description="the attempt that failed"),
            at=_nullable("number", description="when it failed (Unix time)"),
            failed={
                "type": "array",
                "items": {"type": "string"},
                "description": "every task whose failure stands, the first to fail first",
            },
            reverted={"type": "array", "items": {"type": "string"}},
            reverting={"type": "array", "items": {"type": "string"}},
            revert_failed={
                "type": "array",
                "items": {"type": "string"},
                "description": "tasks whose revert failed (see their `revert_failure`)",
            },
            revert_started_at=_nullable("number", description="when it began to revert"),
            ended_at=_nullable("number", description="when it ended (once finished)"),
        ),
        "type": ["object", "null"],
        "description": "What went wrong: null while nothing did (no task failed, not "
        "reverting, not ended REVERTED / FAILED / CANCELLED).",
    },
    "Task": _obj(
        ["name", "state", "attempt"],
        name={"type": "string"},
        state={"type": "string", "enum": _TASK_STATES},
        failed={
            "type": "boolean",
            "description": "its latest attempt failed and that stands: it failed the flow "
            "(REVERTED since, or not), not reverted because another task failed",
        },
        spans={
            "type": "array",
            "items": _ref("Span"),
            "description": "its attempts and reverts on the time axis, in journal order",
        },
        attempt={"type": "integer"},
        started_at=_nullable("number"),
        finished_at=_nullable("number"),
        duration=_nullable("number", description="seconds"),
        result={"description": "the task's journaled result (any JSON value)"},
        failure=_ref("Failure"),
        revert_failure=_ref("Failure"),
    ),
    "StepAttempt": _obj(
        ["attempt", "state", "started_at", "finished_at", "duration", "error", "revert_state"],
        attempt={"type": "integer"},
        state={"type": "string", "enum": _STEP_STATES},
        started_at=_nullable("number", description="Unix time; null when not journaled"),
        finished_at=_nullable("number"),
        duration=_nullable("number", description="seconds"),
        error=_nullable("string", description="`Type: message` of the attempt's failure"),
        revert_state=_nullable("string", enum=_REVERT_STATES),
    ),
    "Step": {
        **_obj(
            [
                "position",
                "name",
                "key",
                "kind",
                "state",
                "attempt",
                "started_at",
                "finished_at",
                "duration",
                "result",
                "failure",
                "revert_state",
                "revert_failure",
                "group",
                "child",
            ],
            position={"type": "integer", "minimum": 1},
            name={"type": "string", "description": "the step's name (`patch:<id>` for a patch)"},
            key={"type": "string", "description": "`<position>:<name>`, its task name"},
            kind={
                "type": "string",
                "enum": ["step", "value", "patch", "child"],
                "description": "a step; a journaled `ctx.now()` / `random()` / `uuid()`; a "
                "patch marker (`ctx.patched`); a child flow's step",
            },
            state={
                "type": "string",
                "enum": _STEP_STATES,
                "description": "of its latest attempt; INTERRUPTED: started, never ended, and "
                "the flow has ended",
            },
            attempt={"type": "integer", "description": "its latest attempt (1 on the first)"},
            started_at=_nullable(
                "number", description="when its first attempt started (null: not journaled)"
            ),
            finished_at=_nullable("number", description="when its latest attempt ended"),
            duration=_nullable("number", description="seconds, first start to latest end"),
            result={"description": "the journaled result or value (null unless SUCCESS)"},
            failure=_ref("Failure"),
            revert_state=_nullable(
                "string", enum=_REVERT_STATES, description="its compensation's state"
            ),
            revert_failure=_ref("Failure"),
            group=_nullable(
                "integer", description="the `ctx.gather` it ran in: its first step's position"
            ),
            child=_nullable("string", description="the child flow's id"),
            revertible={"type": "boolean", "description": "journaled with a compensation"},
            retrying={"type": "boolean", "description": "failed; its retry runs it again"},
            forked=_nullable("string", description="its result was copied from this flow"),
            attempts={"type": "array", "items": _ref("StepAttempt")},
        ),
        "description": "One position of a workflow, as journaled.",
    },
    "FlowStatus": _obj(
        ["flow_id", "name", "state", "finished", "tasks", "last_seq"],
        flow_id={"type": "string"},
        name={"type": "string"},
        state={"type": "string", "enum": _FLOW_STATES},
        finished={"type": "boolean"},
        running_here={"type": "boolean"},
        live_state=_nullable("string", description="the handle's state when it runs here"),
        token=_nullable("integer"),
        created_at=_nullable("number"),
        updated_at=_nullable("number"),
        inputs={"type": "object"},
        progress=_obj(["done", "total"], done={"type": "integer"}, total={"type": "integer"}),
        counts={"type": "object", "additionalProperties": {"type": "integer"}},
        tasks={"type": "array", "items": _ref("Task")},
        retries={"type": "object"},
        failures={"type": "object", "additionalProperties": _ref("Failure")},
        last_seq={"type": "integer"},
        url={"type": "string", "description": "(on submit) the flow's status URL"},
        kind={"type": "string", "enum": ["pattern", "workflow"]},
        steps={
            "type": ["array", "null"],
            "items": _ref("Step"),
            "description": "a workflow's steps by position (null for a pattern flow)",
        },
        parent=_nullable("string", description="the parent flow's id (a child flow)"),
        parent_step=_nullable("string", description="the parent's step key that started it"),
        children={
            "type": "array",
            "items": _obj(
                ["flow_id", "step", "position", "attempt"],
                flow_id={"type": "string"},
                step={"type": "string", "description": "the step key (or task name) that ran it"},
                position=_nullable("integer", description="the step's (null: a pattern task)"),
                attempt=_nullable("integer", description="the attempt that started it"),
            ),
            "description": "the child flows its steps (or tasks) started, one per attempt",
        },
        forked_from=_nullable("string", description="the flow it was forked from"),
        result={"description": "a workflow's journaled result (once SUCCESS)"},
        failure={
            **_ref("Failure"),
            "description": "what made it fail: a workflow's failure, a pattern flow's first "
            "failed task's",
        },
        summary=_ref("Summary"),
        phases={
            "type": "array",
            "items": _obj(
                ["state", "at", "reason"],
                state={"type": "string", "enum": _FLOW_STATES},
                at=_nullable("number"),
                reason=_nullable("string", description="e.g. `cancelled`"),
            ),
            "description": "its flow.state entries: when it ran, reverted, was suspended",
        },
        retry_decisions={
            "type": "array",
            "items": _obj(
                ["scope", "at", "decision", "attempt", "reset"],
                scope={"type": "string", "description": "the retry scope (task or flow)"},
                at=_nullable("number"),
                decision=_nullable("string", enum=["retry", "revert", "revert_all", None]),
                attempt=_nullable("integer"),
                reset={"type": "array", "items": {"type": "string"}},
            ),
            "description": "its retry controllers' decisions, in journal order",
        },
    ),
    "Entry": _obj(
        ["seq", "kind", "task", "state", "token", "at", "data"],
        seq={"type": "integer"},
        kind={"type": "string", "description": "the event kind, e.g. `task.succeeded`"},
        task=_nullable("string"),
        state=_nullable("string"),
        token={"type": "integer"},
        at={"type": "number", "description": "Unix time"},
        data={"description": "the entry's JSON data (text when it is not JSON)"},
    ),
    "JournalPage": _obj(
        ["flow_id", "entries", "next_seq"],
        flow_id={"type": "string"},
        entries={"type": "array", "items": _ref("Entry")},
        next_seq=_nullable("integer", description="pass as `after_seq` for the next page"),
    ),
    "Accepted": _obj(
        ["flow_id", "name", "state", "action", "url"],
        flow_id={"type": "string"},
        name={"type": "string"},
        state={"type": "string", "enum": _FLOW_STATES},
        action={
            "type": "string",
            "enum": ["started", "resumed", "cancelling", "suspending", "stopping", "retrying"],
        },
        url={"type": "string", "description": "the flow's status URL (also in Location)"},
    ),
    "SubmitRequest": {
        "type": "object",
        "required": ["flow"],
        "additionalProperties": False,
        "properties": {
            "flow": {"type": "string", "description": "a registered flow name"},
            "inputs": {"type": ["object", "null"], "description": "the flow's inputs"},
            "flow_id": {
                "type": "string",
                "description": f"the flow's id ({FLOW_ID_RULE}); an unfinished journaled "
                "flow of that id is resumed with its journaled inputs",
            },
        },
    },
    "TakeOverRequest": {
        "type": "object",
        "properties": {
            "force": {
                "type": "boolean",
                "description": "take over even from a live owner on the job board",
            }
        },
    },
    "SendEventRequest": {
        "type": "object",
        "properties": {
            "value": {"description": "the event's value (any JSON; default null)"},
            "key": {"type": "string", "description": "an idempotency key (default: a new one)"},
        },
    },
    "SentEvent": {
        "type": "object",
        "required": ["flow_id", "topic", "seq", "key", "sent_at"],
        "properties": {
            "flow_id": {"type": "string"},
            "topic": {"type": "string"},
            "seq": {"type": "integer", "description": "its number within the flow and topic"},
            "key": {"type": "string"},
            "sent_at": {"type": "number", "description": "epoch seconds"},
        },
    },
    "RetryRequest": {
        "type": "object",
        "required": ["from_task"],
        "properties": {
            "from_task": {"type": "string", "description": "the first task to run again"},
            "flow_id": {"type": "string", "description": "the new flow's id (default: random)"},
        },
    },
}

_FLOW_ID_PARAM: dict[str, Any] = {
    "name": "flow_id",
    "in": "path",
    "required": True,
    "description": f"the flow's id: {FLOW_ID_RULE}",
    "schema": {"type": "string", "minLength": 1, "maxLength": 128},
}


_FORCE_DOC = (
    "with a job board: take over even a flow a live worker holds (fenced out at its next "
    "journal write); true/1/yes or false/0/no"
)


def _operation(
    op_id: str,
    summary: str,
    responses: dict[str, Any],
    *,
    mutation: bool,
    flow_id: bool = False,
    query: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    params = ([_FLOW_ID_PARAM] if flow_id else []) + (query or [])
    op: dict[str, Any] = {"operationId": op_id, "summary": summary, "tags": ["flows"]}
    if description:
        op["description"] = description
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": False, "content": {_JSON: {"schema": body}}}
    common = {"500": _error("internal error, or a corrupt journal entry (`JournalCorrupt`)")}
    common["503"] = _error("the journal, the engine or the job board is unavailable")
    if flow_id:
        common["400"] = _error("an invalid flow id")
    op["responses"] = {**common, **responses}
    op["x-flowcoord-mutation"] = mutation
    return op


def _secured(op: dict[str, Any], required: bool) -> dict[str, Any]:
    if required:
        op["security"] = [{"bearerAuth": []}]
        op["responses"]["401"] = _error("no `Authorization: Bearer` header")
        op["responses"]["403"] = _error("a wrong token")
    else:
        op["security"] = []
    return op


def _paths() -> dict[str, dict[str, dict[str, Any]]]:
    """Path (relative to the prefix) → method → operation; ``x-flowcoord-mutation`` marks
    the operations that need the token, the others need it only with ``protect_reads``."""
    accepted = _json_body(_ref("Accepted"), "accepted; the flow goes on in the background")
    accepted["headers"] = {"Location": {"schema": {"type": "string"}}}
    not_journaled = _error("no such flow in the journal")
    force = _query(
        "force", {"type": "string", "enum": ["true", "1", "yes", "false", "0", "no"]}, _FORCE_DOC
    )
    taken = _error(
        "the flow has finished (`FlowFinished`), is being started here (`FlowRunning`), is "
        "held by a live worker (`FlowOwned`), or a newer owner fenced it (`OwnershipLost`)"
    )
    return {
        "/health": {
            "get": _operation(
                "health",
                "The server is up; how many flows its engine runs.",
                {
                    "200": _json_body(
                        _obj(
                            ["status", "running"],
                            status={"const": "ok"},
                            running={"type": "integer"},
                        ),
                        "the engine runs",
                    )
                },
                mutation=False,
                description="Never asks for a token.",
            )
        },
        "/openapi.json": {
            "get": _operation(
                "openapi",
                "This document.",
                {"200": _json_body({"type": "object"}, "the OpenAPI 3.1 document")},
                mutation=False,
                description="Never asks for a token.",
            )
        },
        "/registry": {
            "get": _operation(
                "registry",
                "The names of the registered flows.",
                {
                    "200": _json_body(
                        _obj(["flows"], flows={"type": "array", "items": {"type": "string"}}),
                        "registered names",
                    )
                },
                mutation=False,
            )
        },
        "/flows": {
            "get": _operation(
                "listFlows",
                "List journaled flows, newest first, a page at a time.",
                {
                    "200": _json_body(_ref("FlowList"), "a page of flows"),
                    "400": _error(
                        "an unknown state, a bad time, limit or name, or an `after` that is "
                        "not a cursor of the listing"
                    ),
                },
                mutation=False,
                description="Ordered by creation time, newest first (flows created at the "
                "same time by flow id, descending). Pages follow an opaque cursor: the next "
                "page is the same whatever flows are added meanwhile. Times: Unix seconds, "
                "an ISO 8601 time (the server's local time without a zone), or a time ago "
                "(`30s`, `10m`, `2h`, `3d`, `1w`).",
                query=[
                    _query(
                        "state",
                        {"type": "string", "examples": ["RUNNING", "REVERTED,FAILED"]},
                        f"only these states, comma-separated, any case ({', '.join(_FLOW_STATES)})",
                    ),
                    _query(
                        "name",
                        {"type": "string", "maxLength": 256},
                        "only flows of this name; `*` matches any run of characters, `?` one",
                    ),
                    _query("since", {"type": "string"}, "only flows created at or after"),
                    _query("until", {"type": "string"}, "only flows created before"),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
                        "page size",
                    ),
                    _query(
                        "after",
                        {"type": "string", "maxLength": 512},
                        "the previous page's `next` (an opaque cursor)",
                    ),
                ],
            ),
            "post": _operation(
                "submit",
                "Start a registered flow (or resume an unfinished one by its flow_id).",
                {
                    "202": accepted,
                    "200": _json_body(
                        {"oneOf": [_ref("FlowStatus"), _ref("FlowRecord")]},
                        "finished within `wait` (the status), or `flow_id` names a flow "
                        "that had already finished (its record)",
                    ),
                    "400": _error("a bad body, an unknown field, a bad flow_id or wait"),
                    "409": _error(
                        "the flow id runs here already, is being started, belongs to a flow "
                        "of another name, or is held by a live worker (`FlowOwned`)"
                    ),
                    "422": _error(
                        "an unregistered flow name; an input whose value does not fit the "
                        "annotation of the task that takes it (`input`, `expected`); names "
                        "the flow does not take (`unknown`, `known`); missing inputs"
                    ),
                },
                mutation=True,
                description="Inputs are converted to the annotations of the parameters that "
                'take them, as `flowcoord run -i` does: `"2"` for an `int` is 2, '
                '`"false"` for a `bool` is false; what does not fit is refused before '
                "anything is journaled.",
                query=[
                    _query(
                        "wait",
                        {"type": "number", "minimum": 0, "maximum": 300, "default": 0},
                        "wait up to this many seconds for the flow to finish",
                    ),
                    force,
                ],
                body=_ref("SubmitRequest"),
            ),
        },
        "/flows/{flow_id}": {
            "get": _operation(
                "flowStatus",
                "Everything the journal says about a flow.",
                {"200": _json_body(_ref("FlowStatus"), "the status"), "404": not_journaled},
                mutation=False,
                flow_id=True,
                description="`kind` says whether it is a pattern flow (its `tasks`) or a "
                "code-first workflow, whose `steps` (by position, with attempts, "
                "compensation and gather group) draw its step timeline; `parent` and "
                "`children` link child flows.",
            )
        },
        "/flows/{flow_id}/journal": {
            "get": _operation(
                "flowJournal",
                "A flow's raw journal entries, in seq order, a page at a time.",
                {"200": _json_body(_ref("JournalPage"), "a page"), "404": not_journaled},
                mutation=False,
                flow_id=True,
                query=[
                    _query(
                        "after_seq",
                        {"type": "integer", "minimum": -1, "default": -1},
                        "entries after this seq (the previous `next_seq`)",
                    ),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1000},
                        "page size",
                    ),
                ],
            )
        },
        "/flows/{flow_id}/graph.svg": {
            "get": _operation(
                "flowGraphSvg",
                "The flow's graph as SVG, nodes filled by task state.",
                {
                    "200": {
                        "description": "SVG",
                        "content": {"image/svg+xml": {"schema": {"type": "string"}}},
                    },
                    "404": not_journaled,
                },
                mutation=False,
                flow_id=True,
            )
        },
        "/flows/{flow_id}/graph.dot": {
            "get": _operation(
                "flowGraphDot",
                "The flow's graph as Graphviz DOT, with task states.",
                {
                    "200": {
                        "description": "DOT",
                        "content": {"text/vnd.graphviz": {"schema": {"type": "string"}}},
                    },
                    "404": not_journaled,
                    "422": _error(
                        "the flow's name is not registered here, or it is a workflow (no graph)"
                    ),
                },
                mutation=False,
                flow_id=True,
            )
        },
        "/flows/{flow_id}/cancel": {
            "post": _operation(
                "cancelFlow",
                "Cancel a flow (reverting it); take a journaled one over first.",
                {
                    "202": accepted,
                    "404": not_journaled,
                    "400": _error("a bad `force`"),
                    "409": taken,
                    "422": _error("the flow's name is not registered here"),
                },
                mutation=True,
                flow_id=True,
                query=[force],
                body=_ref("TakeOverRequest"),
            )
        },
        "/flows/{flow_id}/resume": {
            "post": _operation(
                "resumeFlow",
                "Resume a suspended flow, or take a journaled one over and resume it.",
                {
                    "202": accepted,
                    "404": not_journaled,
                    "400": _error("a bad `force`"),
                    "409": taken,
                    "422": _error("the flow's name is not registered here"),
                },
                mutation=True,
                flow_id=True,
                query=[force],
                body=_ref("TakeOverRequest"),
            )
        },
        "/flows/{flow_id}/suspend": {
            "post": _operation(
                "suspendFlow",
                "Start no new task; the flow waits in SUSPENDED until resumed.",
                {"202": accepted, "409": _error("the flow does not run on this server")},
                mutation=True,
                flow_id=True,
            )
        },
        "/flows/{flow_id}/stop": {
            "post": _operation(
                "stopFlow",
                "Let running tasks finish, then leave the flow SUSPENDED in the journal.",
                {"202": accepted, "409": _error("the flow does not run on this server")},
                mutation=True,
                flow_id=True,
            )
        },
        "/flows/{flow_id}/retry": {
            "post": _operation(
                "retryFlow",
                "Re-run a finished flow from a task, as a new flow.",
                {
                    "202": accepted,
                    "400": _error("no from_task, or a bad new flow id"),
                    "404": not_journaled,
                    "409": _error("the flow has not finished, or the new id is taken"),
                    "422": _error(
                        "no such task (a workflow's: a step key such as `3:attach`), or the "
                        "flow's name is not registered here"
                    ),
                },
                mutation=True,
                flow_id=True,
                body=_ref("RetryRequest"),
            )
        },
        "/flows/{flow_id}/events/{topic}": {
            "post": _operation(
                "sendEvent",
                "Send an event to a flow: its workflow's next ctx.wait_event(topic) takes it.",
                {
                    "201": _json_body(
                        _ref("SentEvent"),
                        "sent, durably (under a key sent before: "
                        "the event that key names, nothing sent again)",
                    ),
                    "400": _error("a bad topic, key or value (the codec refuses it, too big)"),
                    "404": not_journaled,
                },
                mutation=True,
                flow_id=True,
                query=[
                    {
                        "name": "topic",
                        "in": "path",
                        "required": True,
                        "description": f"the event's topic: {TOPIC_RULE}",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
                    }
                ],
                body=_ref("SendEventRequest"),
                description="Events of a topic are taken in the order sent, each once; the "
                "engine running the flow finds one within about a second.",
            )
        },
    }


def _job_paths() -> dict[str, dict[str, dict[str, Any]]]:
    """The job board's routes (:mod:`._jobs_openapi`) as operations of this document."""
    paths: dict[str, dict[str, dict[str, Any]]] = {}
    for path, method, spec in job_operations():
        op = _operation(**spec)
        op["tags"] = ["jobs"]
        paths.setdefault(path, {})[method] = op
    return paths


def build_openapi(
    prefix: str = "/api", *, auth: bool = True, protect_reads: bool = False
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the JSON API served under ``prefix``. ``auth``: the app
    has a token (changes need it); ``protect_reads``: reads need it too."""
    prefix = prefix.rstrip("/")
    paths: dict[str, Any] = {}
    for path, methods in {**_paths(), **_job_paths()}.items():
        public = path in ("/health", "/openapi.json")
        for op in methods.values():
            needs = auth and not public and (op["x-flowcoord-mutation"] or protect_reads)
            _secured(op, needs)
        paths[prefix + path] = methods
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "flowcoord",
            "version": __version__,
            "description": "Submit, list, inspect, cancel, resume, suspend, stop and retry "
            "journaled flows; with a job board, post, list, trash and requeue its jobs and "
            "see its queues and members. Errors are JSON `{error, hint}`.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": copy.deepcopy({**_SCHEMAS, **JOB_SCHEMAS}),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }


def add_openapi_route(app: web.Application, prefix: str) -> None:
    """Serve :func:`build_openapi` for the app's settings at ``GET {prefix}/openapi.json``."""

    async def openapi(request: web.Request) -> web.Response:
        st = state_of(request)
        doc = build_openapi(st.prefix, auth=st.token is not None, protect_reads=st.protect_reads)
        return web.json_response(doc, dumps=dumps)

    app.router.add_get(f"{prefix.rstrip('/')}/openapi.json", openapi)
