"""The flow routes' paths of the OpenAPI document: health, this document, the registry, and
submitting, listing, inspecting and controlling flows (cancel, resume, suspend, stop, retry,
send an event).

The job board's routes are ``_jobs_openapi``'s; ``_openapi`` puts both under the prefix.
"""

from __future__ import annotations

from typing import Any

from .._journal._sent import TOPIC_RULE
from ._operation import operation as _operation
from ._schema import error as _error
from ._schema import json_body as _json_body
from ._schema import obj as _obj
from ._schema import query as _query
from ._schema import ref as _ref
from ._status_schemas import FLOW_STATES as _FLOW_STATES

__all__ = ["flow_paths"]

_FORCE_DOC = (
    "with a job board: take over even a flow a live worker holds (fenced out at its next "
    "journal write); true/1/yes or false/0/no"
)


def flow_paths() -> dict[str, dict[str, dict[str, Any]]]:
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
                "engine running the flow finds one at once on PostgreSQL (notified), within "
                "about 50 ms on SQLite.",
            )
        },
    }
