"""flowcoord for aiohttp: a JSON API and a live dashboard over an engine, in your app.

::

    from aiohttp import web
    import flowcoord as fc
    import flowcoord.aiohttp as fcweb

    app = web.Application()
    fcweb.setup(app, engine_factory=lambda: fc.Engine(journal), registry=registry, token="s3cret")
    web.run_app(app)

Handlers reach the engine with :func:`get_engine` (``get_engine(request)``), convert and
check a request's inputs as the API does with :func:`convert_inputs`, and answer errors in
the API's shape with :func:`json_error` (see ``examples/aiohttp_service.py``).
"""

from __future__ import annotations

from .._model._inputs import convert_inputs as convert_inputs
from ._app import STATE_KEY as STATE_KEY
from ._app import AppState as AppState
from ._app import create_app as create_app
from ._app import get_engine as get_engine
from ._app import get_registry as get_registry
from ._app import setup as setup
from ._errors import json_error as json_error
from ._layout import render_svg as render_svg

__all__ = [
    "STATE_KEY",
    "AppState",
    "convert_inputs",
    "create_app",
    "get_engine",
    "get_registry",
    "json_error",
    "render_svg",
    "setup",
]
