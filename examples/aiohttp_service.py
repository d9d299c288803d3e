"""An aiohttp service that embeds a flowcoord engine: a handler awaits a flow per request, and
the flowcoord JSON API and dashboard are mounted on the same app.

    python examples/aiohttp_service.py --port 8080 --token s3cret
    curl -X POST localhost:8080/provision -d '{"size": 2}'       # 200 {"flow_id", "vm_id", "ip"}
    curl -X POST localhost:8080/provision -d '{"size": "two"}'   # 422: size is not an integer
    curl -X POST localhost:8080/provision -d '{"size": 99}'      # 500: the flow failed, reverted
    open http://localhost:8080/          # the dashboard

The handler answers as the flowcoord API does, JSON ``{"error", "hint"}``: what the client
sent wrong is a 4xx naming it (nothing is started), a flow that failed a 500 with its flow id
and the failed task's error, to look it up on the dashboard.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import anyio
import structlog
from aiohttp import web

import flowcoord as fc
import flowcoord.aiohttp as fcweb

MAX_SIZE = 8


@fc.task(provides="vm_id")
async def allocate(size: int) -> str:
    await anyio.sleep(0.05)
    if size > MAX_SIZE:
        raise ValueError(f"no capacity for a VM of size {size} (at most {MAX_SIZE})")
    return f"vm-{size}"


@fc.task(provides="ip")
async def start_vm(vm_id: str) -> str:
    await anyio.sleep(0.05)
    return "10.0.0.7"


def build_provision() -> fc.Flow:
    return fc.Linear("provision", allocate, start_vm)


async def provision(request: web.Request) -> web.Response:
    """POST /provision {"size": n}: run the flow and answer with its result."""
    usage = 'send a JSON object such as {"size": 2}'
    try:
        body: Any = await request.json()
    except ValueError:
        return fcweb.json_error(400, "the request body is not JSON", usage)
    if not isinstance(body, dict):
        return fcweb.json_error(400, "the request body must be a JSON object", usage)
    engine = fcweb.get_engine(request)
    flow = fcweb.get_registry(request).build("provision")
    try:
        # {"size": "2"} is 2; {"size": "two"}, {"sise": 2} or no size at all: refused, naming
        # the input, before anything is journaled
        inputs = fcweb.convert_inputs(flow, body)
        handle = await engine.start(flow, inputs)
    except fc.FlowDefinitionError as exc:
        return fcweb.json_error(422, exc.message, exc.hint or usage, inputs=list(exc.names))
    try:
        outcome = await handle.wait()
    except Exception as exc:  # the flow failed (and was reverted): say which task, and why
        status = await engine.status(handle.flow_id)
        failed = [name for name, t in status.tasks.items() if t.failure is not None]
        return fcweb.json_error(
            500,
            f"provisioning failed: {type(exc).__name__}: {exc}",
            f"see the flow on the dashboard: /#/flows/{handle.flow_id}",
            flow_id=handle.flow_id,
            state=status.state.value,
            failed_task=failed[0] if failed else None,
        )
    return web.json_response(
        {"flow_id": outcome.flow_id, "vm_id": outcome["vm_id"], "ip": outcome["ip"]}
    )


def make_app(journal: str, token: str) -> web.Application:
    registry = fc.FlowRegistry()
    registry.register("provision", build_provision)
    app = web.Application()
    app.router.add_post("/provision", provision)
    fcweb.setup(
        app,
        engine_factory=lambda: fc.Engine(fc.SQLiteJournal(journal)),
        registry=registry,
        token=token,
    )
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--journal", default="service-journal.sqlite")
    parser.add_argument("--token", default="change-me")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    web.run_app(make_app(args.journal, args.token), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
