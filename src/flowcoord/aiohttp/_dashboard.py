"""The dashboard: one HTML page and its static assets (plain JS, no build step, no CDN)."""

from __future__ import annotations

from html import escape
from pathlib import Path

from aiohttp import web

__all__ = ["STATIC_DIR", "STATIC_PATH", "add_dashboard_routes"]

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PATH = "/_flowcoord"


def add_dashboard_routes(app: web.Application, prefix: str) -> None:
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    page = page.replace("{{API_PREFIX}}", escape(prefix)).replace("{{STATIC}}", STATIC_PATH)

    async def index(request: web.Request) -> web.Response:
        return web.Response(
            text=page, content_type="text/html", headers={"Cache-Control": "no-cache"}
        )

    app.router.add_get("/", index, name="flowcoord-dashboard")
    app.router.add_static(STATIC_PATH, STATIC_DIR, name="flowcoord-static")
