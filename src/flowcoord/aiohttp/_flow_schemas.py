"""The flow routes' component schemas of the OpenAPI document, in the document's order.

Errors, flow records and lists, journal pages, the accepted answer and the request bodies are
here; a flow's status (``FlowStatus`` and what it holds, and ``Failure``) comes from
``_status_schemas``. ``_openapi`` adds the job board's (``_jobs_openapi``) after these.
"""

from __future__ import annotations

from typing import Any

from .._ids import FLOW_ID_RULE
from ._schema import nullable as _nullable
from ._schema import obj as _obj
from ._schema import ref as _ref
from ._status_schemas import FAILURE as _FAILURE
from ._status_schemas import FLOW_STATES as _FLOW_STATES
from ._status_schemas import STATUS_SCHEMAS as _STATUS_SCHEMAS

__all__ = ["FLOW_SCHEMAS"]

FLOW_SCHEMAS: dict[str, Any] = {
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
    **_STATUS_SCHEMAS,
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
