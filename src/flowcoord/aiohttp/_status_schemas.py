"""A flow's status in the OpenAPI document: the component schemas of what
``GET {prefix}/flows/{flow_id}`` answers (its tasks, spans, steps and summary) and the states
they name.

Plain data for ``_flow_schemas``, which puts them into the flow routes' schemas in the
document's order; ``Failure`` is here too (tasks, steps and summaries carry it).
"""

from __future__ import annotations

from typing import Any

from .._states import FlowState, TaskState
from ._schema import nullable as _nullable
from ._schema import obj as _obj
from ._schema import ref as _ref

__all__ = ["FAILURE", "FLOW_STATES", "STATUS_SCHEMAS"]

FLOW_STATES = [s.value for s in FlowState]
_TASK_STATES = [s.value for s in TaskState]
_STEP_STATES = ["PENDING", "RUNNING", "SUCCESS", "FAILURE", "INTERRUPTED"]
_REVERT_STATES = ["REVERTING", "REVERTED", "REVERT_FAILURE", None]


FAILURE: dict[str, Any] = {
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

# Span, Summary, Task, StepAttempt, Step, FlowStatus: in this order in the document.
STATUS_SCHEMAS: dict[str, Any] = {
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
        state={"type": "string", "enum": FLOW_STATES},
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
                state={"type": "string", "enum": FLOW_STATES},
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
}
