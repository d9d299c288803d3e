"""An aiohttp service that embeds a flowcoord engine: a handler awaits a flow per request, and
the flowcoord JSON API and dashboard are mounted on the same app.

    python examples/aiohttp_service.py --port 8080 --token s3cret
    curl -X POST localhost:8080/provision -d '{"size": 2}'
    open http://localhost:8080/          # the dashboard
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


@fc.task(provides="vm_id")
async def allocate(size: int) -> str:
    await anyio.sleep(0.05)
    return f"vm-{size}"


@fc.task(provides="ip")
async def start_vm(vm_id: str) -> str:
    await anyio.sleep(0.05)
    return "10.0.0.7"


def build_provision() -> fc.Flow:
    return fc.Linear("provision", allocate, start_vm)


async def provision(request: web.Request) -> web.Response:
    """POST /provision {"size": n}: run the flow and answer with its result."""
    body: dict[str, Any] = await request.json()
    engine = fcweb.get_engine(request)
    registry = fcweb.get_registry(request)
    out = await engine.run(registry.build("provision"), {"size": int(body.get("size", 1))})
    return web.json_response({"flow_id": out.flow_id, "vm_id": out["vm_id"], "ip": out["ip"]})


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
