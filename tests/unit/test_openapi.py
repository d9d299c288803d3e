"""The OpenAPI document at ``{prefix}/openapi.json``, and that every route of the web face is
in it and in the HTTP reference (docs/reference/http.md): a route added without documenting
it fails here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import flowcoord as fc
import flowcoord.aiohttp as fcweb
from flowcoord._views import status_view
from flowcoord.aiohttp._openapi import build_openapi

pytestmark = pytest.mark.anyio

HTTP_REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "http.md"
# Served by the dashboard, not the JSON API (documented in http.md as such).
DASHBOARD_ROUTE = "flowcoord-dashboard"
STATIC_ROUTE = "flowcoord-static"


def make_app(prefix: str = "/api", **kwargs: Any) -> web.Application:
    registry = fc.FlowRegistry()

    @fc.task(provides="b")
    async def double(a: int) -> int:
        return a * 2

    registry.register("double", lambda: fc.Linear("double", double))
    app = web.Application()
    kwargs.setdefault("token", "s3cret")
    fcweb.setup(app, engine_factory=fc.Engine, registry=registry, prefix=prefix, **kwargs)
    return app


def api_routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, but HEAD (aiohttp adds one per GET) and
    the dashboard's page and static files."""
    routes = set()
    for route in app.router.routes():
        if route.method == "HEAD" or route.name in (DASHBOARD_ROUTE, STATIC_ROUTE):
            continue
        assert route.resource is not None
        routes.add((route.method, route.resource.canonical))
    return routes


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m.upper(), path) for path, ops in doc["paths"].items() for m in ops}


async def fetch(app: web.Application, path: str) -> Any:
    async with TestClient(TestServer(app)) as client:
        resp = await client.get(path)
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "application/json"
        return await resp.json()


async def test_the_document_is_openapi_3_1() -> None:
    doc = await fetch(make_app(), "/api/openapi.json")
    assert doc["openapi"].startswith("3.1.")
    assert doc["info"]["title"] == "flowcoord"
    assert doc["info"]["version"] == fc.__version__
    assert doc["paths"]
    for ops in doc["paths"].values():
        for op in ops.values():
            assert op["operationId"]
            assert op["summary"]
            assert op["responses"]
            for response in op["responses"].values():
                for media in response.get("content", {}).values():
                    ref = media["schema"].get("$ref")
                    if ref is not None:
                        assert (
                            ref.removeprefix("#/components/schemas/")
                            in (doc["components"]["schemas"])
                        )


@pytest.mark.parametrize("prefix", ["/api", "/ops/flowcoord/"])
async def test_every_route_is_in_the_document(prefix: str) -> None:
    app = make_app(prefix)
    doc = await fetch(app, f"{prefix.rstrip('/')}/openapi.json")
    routes = api_routes(app)
    assert routes == documented(doc), "routes and the OpenAPI document differ"
    assert all(path.startswith(prefix.rstrip("/") + "/") for _, path in routes)


def test_every_route_is_in_the_http_reference() -> None:
    text = HTTP_REFERENCE.read_text(encoding="utf-8")
    missing = [f"{m} {p}" for m, p in sorted(api_routes(make_app())) if f"`{m} {p}`" not in text]
    assert not missing, f"routes not documented in {HTTP_REFERENCE}: {missing}"
    # The dashboard's routes, excluded above, are documented too.
    assert "`GET /`" in text
    assert "`GET /_flowcoord/" in text


def test_the_document_says_which_calls_need_the_token() -> None:
    def secured(doc: dict[str, Any]) -> set[tuple[str, str]]:
        return {
            (m.upper(), p)
            for p, ops in doc["paths"].items()
            for m, op in ops.items()
            if op["security"]
        }

    mutations = {
        (m, p) for m, p in documented(build_openapi("/api")) if m == "POST"
    }  # every POST changes something
    assert secured(build_openapi("/api")) == mutations
    reads = secured(build_openapi("/api", protect_reads=True))
    assert reads > mutations
    assert ("GET", "/api/health") not in reads
    assert ("GET", "/api/openapi.json") not in reads
    assert not secured(build_openapi("/api", auth=False))


async def test_the_served_document_follows_the_apps_settings() -> None:
    doc = await fetch(make_app(protect_reads=True), "/api/openapi.json")
    assert doc["paths"]["/api/flows"]["get"]["security"] == [{"bearerAuth": []}]
    doc = await fetch(make_app(token=None), "/api/openapi.json")
    assert doc["paths"]["/api/flows"]["post"]["security"] == []


async def test_the_status_schema_names_every_field_of_a_status() -> None:
    async def one(n: int) -> int:
        return n

    async def undo(n: int, result: int | None) -> None:
        return None

    @fc.workflow
    async def wf(ctx: fc.Context, n: int) -> int:
        ctx.now()
        a, b = await ctx.gather(ctx.step(one, n, revert=undo), ctx.step(one, n, name="two"))
        return int(a) + int(b)

    @fc.task(provides="b")
    async def double(a: int) -> int:
        return a * 2

    journal = fc.MemoryJournal()
    async with fc.Engine(journal) as engine:
        await engine.run(wf, {"n": 1}, flow_id="w-1")
        await engine.run(fc.Linear("double", double), {"a": 1}, flow_id="p-1")
        views = []
        for flow_id in ("w-1", "p-1"):
            entries = await journal.read(flow_id)
            rep = await engine.status(flow_id)
            views.append(
                status_view(rep, None, running_here=False, live_state=None, entries=entries)
            )
    schemas = build_openapi()["components"]["schemas"]
    for view in views:
        assert set(view) <= set(schemas["FlowStatus"]["properties"])
        assert set(schemas["FlowStatus"]["required"]) <= set(view)
    assert [v["kind"] for v in views] == ["workflow", "pattern"]
    for view in views:  # tasks, their spans, the phases: every field named
        for task in view["tasks"]:
            assert set(task) <= set(schemas["Task"]["properties"])
            for span in task["spans"]:
                assert set(span) == set(schemas["Span"]["properties"])
        phase = schemas["FlowStatus"]["properties"]["phases"]["items"]
        assert all(set(p) == set(phase["properties"]) for p in view["phases"])
        assert view["summary"] is None
    steps = views[0]["steps"]
    assert [s["key"] for s in steps] == ["1:now", "2:one", "3:two"]
    for step in steps:
        assert set(step) == set(schemas["Step"]["properties"])
        assert set(schemas["Step"]["required"]) <= set(step)
        assert step["kind"] in schemas["Step"]["properties"]["kind"]["enum"]
        assert step["state"] in schemas["Step"]["properties"]["state"]["enum"]
        for attempt in step["attempts"]:
            assert set(attempt) == set(schemas["StepAttempt"]["properties"])


async def test_the_status_schema_names_every_field_of_a_failure_summary() -> None:
    @fc.task(provides="b")
    async def double(a: int) -> int:
        return a * 2

    @fc.task
    async def boom(b: int) -> None:
        raise ValueError("no")

    journal = fc.MemoryJournal()
    async with fc.Engine(journal) as engine:
        with pytest.raises(ValueError):
            await engine.run(fc.Linear("failing", double, boom), {"a": 1}, flow_id="f-1")
        view = status_view(
            await engine.status("f-1"),
            None,
            running_here=False,
            live_state=None,
            entries=await journal.read("f-1"),
        )
    schemas = build_openapi()["components"]["schemas"]
    assert set(view["summary"]) == set(schemas["Summary"]["properties"])
    assert set(schemas["Summary"]["required"]) == set(view["summary"])
    assert view["summary"]["cause"] in schemas["Summary"]["properties"]["cause"]["enum"]
    assert all(s["state"] in schemas["Span"]["properties"]["state"]["enum"]
               for t in view["tasks"] for s in t["spans"])  # fmt: skip


def test_the_list_and_submit_document_their_parameters_and_refusals() -> None:
    paths = build_openapi("/api")["paths"]
    listing = paths["/api/flows"]["get"]
    assert [q["name"] for q in listing["parameters"]] == [
        "state", "name", "since", "until", "limit", "after",
    ]  # fmt: skip
    assert "newest first" in listing["summary"]
    assert "cursor" in listing["description"]
    errors = build_openapi()["components"]["schemas"]["Error"]["properties"]
    assert {"input", "expected", "unknown", "known"} <= set(errors)
    submit = paths["/api/flows"]["post"]
    assert "annotations" in submit["description"]
    assert "`input`, `expected`" in submit["responses"]["422"]["description"]
