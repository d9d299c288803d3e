"""flowcoord for aiohttp: a JSON API and a live dashboard over an engine, in your app.

::

    from aiohttp import web
    import flowcoord as fc
    import flowcoord.aiohttp as fcweb

    app = web.Application()
    fcweb.setup(app, engine_factory=lambda: fc.Engine(journal), registry=registry, token="s3cret")
    web.run_app(app)

Handlers reach the engine with :func:`get_engine` (``get_engine(request)``).
"""

from __future__ import annotations

from ._app import STATE_KEY as STATE_KEY
from ._app import AppState as AppState
from ._app import create_app as create_app
from ._app import get_engine as get_engine
from ._app import get_registry as get_registry
from ._app import setup as setup
from ._layout import render_svg as render_svg

__all__ = [
    "STATE_KEY",
    "AppState",
    "create_app",
    "get_engine",
    "get_registry",
    "render_svg",
    "setup",
]
