"""The job board's routes (``_jobs_api``) as OpenAPI operations and schemas, which
``_openapi`` puts into its document (``docs/reference/http.md`` is their prose twin).

Plain data, no import of ``_openapi``: each operation is the arguments of its
``_operation`` (which adds the responses every route shares and the token's security).
"""

from __future__ import annotations

from typing import Any

from ._schema import error as _error
from ._schema import json_body as _body
from ._schema import obj as _obj
from ._schema import query as _query
from ._schema import ref as _ref

__all__ = ["JOB_SCHEMAS", "job_operations"]


def _time(description: str) -> dict[str, Any]:
    return {"type": ["number", "null"], "description": description}


def _path(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "maxLength": 64},
    }


_TIME_IN = {
    "oneOf": [
        {"type": "number", "description": "epoch seconds"},
        {"type": "string", "description": "ISO 8601 (the server's local time without a zone)"},
        {"type": "null"},
    ]
}

JOB_SCHEMAS: dict[str, Any] = {
    "Job": {
        **_obj(
            ["job_id", "flow", "flow_id", "inputs", "queue", "priority", "key", "status"],
            job_id={"type": "string", "description": "derived from the key: one key, one job"},
            flow={"type": "string", "description": "the registered flow's name"},
            flow_id={"type": "string"},
            inputs={"type": "object", "description": "as the app shows values (redacted, cut)"},
            queue={"type": "string"},
            priority={"type": "integer", "description": "higher runs first"},
            key={"type": "string", "description": "the idempotency key"},
            status={
                "type": "string",
                "enum": ["waiting", "delayed", "running", "consumed", "trashed"],
                "description": "on the board: waiting (due), delayed (not yet due) or running "
                "(a worker holds it: `owner`); an ended job a repeated key names: its state",
            },
            state={"type": "string", "enum": ["queued", "consumed", "trashed"]},
            owner={"type": ["string", "null"], "description": "the member holding its claim"},
            claims={"type": "integer", "description": "times it was claimed"},
            failures={"type": "integer", "description": "times a worker gave it up on an error"},
            created_at={"type": "number", "description": "when it was posted (Unix time)"},
            not_before={"type": "number", "description": "not run before (Unix time; 0: none)"},
            outcome={"type": ["string", "null"], "description": "an ended job's final state"},
            deduplicated={
                "type": "boolean",
                "description": "(on a post) the key named a job posted before: this is that job",
            },
            url={"type": "string"},
        ),
        "additionalProperties": True,
        "description": "A job on the board. Fields the board gains (e.g. headers) appear as "
        "they are.",
    },
    "JobList": _obj(
        ["jobs", "queue", "limit", "more"],
        jobs={"type": "array", "items": _ref("Job"), "description": "in claim order"},
        queue={"type": ["string", "null"]},
        limit={"type": "integer"},
        more={"type": "boolean", "description": "the limit was reached: there may be more"},
    ),
    "TrashedJob": _obj(
        ["trash_id", "reason", "trashed_at", "job"],
        trash_id={"type": "string", "description": "`<job id>-<10 digits>`: for requeue"},
        reason={"type": "string"},
        trashed_at={"type": "number", "description": "Unix time"},
        job=_ref("Job"),
    ),
    "TrashList": _obj(
        ["trash"],
        trash={"type": "array", "items": _ref("TrashedJob"), "description": "oldest first"},
    ),
    "QueueOverview": _obj(
        ["name", "config", "queued", "waiting", "delayed", "running", "served_by"],
        name={"type": "string"},
        config={
            "type": "object",
            "additionalProperties": True,
            "description": "its configuration: `concurrency` (the global limit; null: none) "
            "and any limit the board gains",
        },
        queued={"type": "integer", "description": "jobs nobody holds (waiting + delayed)"},
        waiting={"type": "integer"},
        delayed={"type": "integer"},
        running={"type": "array", "items": _ref("Job"), "description": "held, with `owner`"},
        served_by={
            "type": "array",
            "items": _obj(
                ["member", "worker_limit"],
                member={"type": "string"},
                worker_limit={"type": ["integer", "null"], "description": "its own limit"},
            ),
        },
    ),
    "Queues": _obj(
        ["queues", "complete", "limit", "trash"],
        queues={"type": "array", "items": _ref("QueueOverview")},
        complete={
            "type": "boolean",
            "description": "false: more jobs wait than `limit`; the counts are lower bounds",
        },
        limit={"type": "integer"},
        trash={"type": "array", "items": _ref("TrashedJob")},
    ),
    "Member": _obj(
        ["name", "info", "claims", "jobs"],
        name={"type": "string"},
        info={
            "type": "object",
            "additionalProperties": True,
            "description": "what it announced: host, pid, started_at, capacity, queues, "
            "worker_limits",
        },
        claims={"type": "array", "items": {"type": "string"}, "description": "job ids held"},
        jobs={"type": "array", "items": _ref("Job"), "description": "the jobs it holds"},
    ),
    "MemberList": _obj(["members"], members={"type": "array", "items": _ref("Member")}),
    "PostJobRequest": {
        **_obj(
            ["flow"],
            flow={"type": "string", "description": "a registered flow's name"},
            inputs={"type": "object", "description": "converted as on submit"},
            flow_id={"type": "string", "description": "default: a fresh one"},
            key={"type": "string", "description": "the idempotency key (default: the flow id)"},
            priority={"type": "integer", "minimum": -1000, "maximum": 1000, "default": 0},
            queue={"type": "string", "default": "default"},
            not_before=_TIME_IN,
            partition={"type": ["string", "null"], "description": "its partition key"},
            headers={
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "small metadata that travels with it (trace context)",
            },
        ),
        "additionalProperties": False,
    },
    "TrashRequest": {
        **_obj(["reason"], reason={"type": "string", "minLength": 1, "maxLength": 2000}),
        "additionalProperties": False,
    },
    "PurgeRequest": {
        **_obj([], before={**_TIME_IN, "description": "only entries trashed before this"}),
        "additionalProperties": False,
    },
    "Purged": _obj(
        ["purged", "before"],
        purged={"type": "integer", "description": "entries deleted"},
        before=_time("the bound asked for (Unix time), or null"),
    ),
}

_NO_BOARD = _error("the app has no job board (`flowcoord serve --zk`)")
_JOB_ID = _path("job_id", "the job's id (24 hex digits)")
_TRASH_ID = _path("trash_id", "the trash entry's id, `<job id>-<10 digits>`")


def job_operations() -> list[tuple[str, str, dict[str, Any]]]:
    """(path relative to the prefix, method, the arguments of ``_openapi._operation``)."""
    job = _body(_ref("Job"), "the job")
    return [
        (
            "/jobs",
            "get",
            {
                "op_id": "listJobs",
                "summary": "The jobs on the board, in claim order.",
                "responses": {
                    "200": _body(_ref("JobList"), "the first `limit` jobs"),
                    "400": _error("a bad limit"),
                    "404": _error("no such queue (`UnknownQueue`)"),
                    "501": _NO_BOARD,
                },
                "mutation": False,
                "query": [
                    _query("queue", {"type": "string"}, "only this queue's jobs"),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100},
                        "at most this many (the first ones)",
                    ),
                ],
            },
        ),
        (
            "/jobs",
            "post",
            {
                "op_id": "postJob",
                "summary": "Post a registered flow as a job, idempotently under its key.",
                "responses": {
                    "201": {**job, "headers": {"Location": {"schema": {"type": "string"}}}},
                    "200": _body(
                        _ref("Job"),
                        "the key was posted before: the job it names (`deduplicated`; an "
                        "ended one within the key retention, with its `state` and `outcome`)",
                    ),
                    "400": _error("a bad body, field, flow id, key, priority or time"),
                    "409": _error(
                        "the key names a job of another flow or with other inputs "
                        "(`JobKeyConflict`: `key`, `job_id`, `existing_flow`)"
                    ),
                    "422": _error(
                        "an unregistered flow; inputs that do not fit (as on submit); an "
                        "undeclared queue (`UnknownQueue`: `queue`)"
                    ),
                    "501": _NO_BOARD,
                },
                "mutation": True,
                "body": _ref("PostJobRequest"),
                "description": "Inputs are converted to the flow's annotations as "
                "`POST .../flows` does. A worker serving the queue runs it. The request's "
                "`traceparent`/`tracestate` headers go into the job's headers when the body "
                "gives no `traceparent` (the flow is traced under the caller's span).",
            },
        ),
        (
            "/jobs/{job_id}",
            "get",
            {
                "op_id": "getJob",
                "summary": "One job on the board.",
                "responses": {
                    "200": job,
                    "404": _error("no such job on the board (ended, or never posted)"),
                    "501": _NO_BOARD,
                },
                "mutation": False,
                "query": [_JOB_ID],
            },
        ),
        (
            "/jobs/{job_id}/trash",
            "post",
            {
                "op_id": "trashJob",
                "summary": "Move a waiting job nobody holds to the trash, with a reason.",
                "responses": {
                    "200": _body(_ref("TrashedJob"), "the trash entry"),
                    "400": _error("no reason"),
                    "404": _error("no such job on the board"),
                    "409": _error(
                        "a worker holds it (`JobAlreadyClaimed`): cancel or stop its flow first"
                    ),
                    "501": _NO_BOARD,
                },
                "mutation": True,
                "query": [_JOB_ID],
                "body": _ref("TrashRequest"),
                "description": "Atomic against a claim: of the two, one wins. Its key stays "
                "taken (a post of it answers the trashed job) for the key retention.",
            },
        ),
        (
            "/queues",
            "get",
            {
                "op_id": "listQueues",
                "summary": "Each queue: its limits, waiting and running jobs, who serves it.",
                "responses": {
                    "200": _body(_ref("Queues"), "the queues and the trash"),
                    "400": _error("a bad limit"),
                    "501": _NO_BOARD,
                },
                "mutation": False,
                "query": [
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1000},
                        "read at most this many jobs (the claimed ones are read anyway)",
                    )
                ],
            },
        ),
        (
            "/members",
            "get",
            {
                "op_id": "listMembers",
                "summary": "The live workers, what they announced, and the jobs each holds.",
                "responses": {"200": _body(_ref("MemberList"), "the members"), "501": _NO_BOARD},
                "mutation": False,
            },
        ),
        (
            "/trash",
            "get",
            {
                "op_id": "listTrash",
                "summary": "The trash: each entry's job, reason and time.",
                "responses": {"200": _body(_ref("TrashList"), "the entries"), "501": _NO_BOARD},
                "mutation": False,
            },
        ),
        (
            "/trash/{trash_id}/requeue",
            "post",
            {
                "op_id": "requeueJob",
                "summary": "Post a trashed job again (claims and failures reset).",
                "responses": {
                    "201": {**job, "headers": {"Location": {"schema": {"type": "string"}}}},
                    "404": _error("no such trash entry (requeued or purged)"),
                    "409": _error("its key names a job on the board again (`JobKeyConflict`)"),
                    "501": _NO_BOARD,
                },
                "mutation": True,
                "query": [_TRASH_ID],
                "description": "The same flow, flow id, inputs, queue, priority and key; the "
                "entry is removed in the same write, so a requeue happens once.",
            },
        ),
        (
            "/trash/purge",
            "post",
            {
                "op_id": "purgeTrash",
                "summary": "Delete trash entries: all, or those trashed before a time.",
                "responses": {
                    "200": _body(_ref("Purged"), "how many went"),
                    "400": _error("a bad body or time"),
                    "501": _NO_BOARD,
                },
                "mutation": True,
                "body": _ref("PurgeRequest"),
            },
        ),
    ]
