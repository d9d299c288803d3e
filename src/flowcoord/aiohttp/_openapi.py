"""The JSON API as an OpenAPI 3.1 document, served at ``GET {prefix}/openapi.json``.

A description only: the routes and their checks live in ``_api``. The document's paths carry
the app's prefix, and its security says what this app asks for (a token for changes, and for
reads too with ``protect_reads``). ``docs/reference/http.md`` is the prose twin of this
document; ``tests/unit/test_openapi.py`` checks that every route is in both.

The document is assembled here from its parts: the flow routes' paths (``_flows_openapi``)
and schemas (``_flow_schemas``, with a flow's status from ``_status_schemas``), the job
board's (``_jobs_openapi``), each operation built and secured by ``_operation``.
"""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from .. import __version__
from ._errors import dumps
from ._flow_schemas import FLOW_SCHEMAS as _SCHEMAS
from ._flows_openapi import flow_paths as _paths
from ._jobs_openapi import JOB_SCHEMAS, job_operations
from ._operation import operation as _operation
from ._operation import secured as _secured
from ._state import state_of

__all__ = ["add_openapi_route", "build_openapi"]


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
