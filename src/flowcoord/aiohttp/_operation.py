"""One operation of the OpenAPI document: its parameters, request body and responses (with
the errors every route may answer), and its security.

Every route's operation is built by :func:`operation`: the flow routes' in ``_flows_openapi``,
the job board's from the arguments ``_jobs_openapi`` gives; ``_openapi`` secures each one
(:func:`secured`) for the app's settings.
"""

from __future__ import annotations

from typing import Any

from .._ids import FLOW_ID_RULE
from ._schema import error as _error

__all__ = ["operation", "secured"]

_JSON = "application/json"

_FLOW_ID_PARAM: dict[str, Any] = {
    "name": "flow_id",
    "in": "path",
    "required": True,
    "description": f"the flow's id: {FLOW_ID_RULE}",
    "schema": {"type": "string", "minLength": 1, "maxLength": 128},
}


def operation(
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


def secured(op: dict[str, Any], required: bool) -> dict[str, Any]:
    if required:
        op["security"] = [{"bearerAuth": []}]
        op["responses"]["401"] = _error("no `Authorization: Bearer` header")
        op["responses"]["403"] = _error("a wrong token")
    else:
        op["security"] = []
    return op
