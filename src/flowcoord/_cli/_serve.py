"""Serving: the web face, the worker, the demo and the benchmarks."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import secrets
import subprocess
import sys

import anyio

from .._engine._engine import Engine
from .._journal._urls import open_journal, redact
from ..errors import ConfigurationError
from ._common import _ENV_TOKEN, EXIT_OK, EXIT_USAGE
from ._load import load_registry
from ._worker import open_board_of


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from aiohttp import web

        from ..aiohttp import create_app
    except ImportError as exc:
        raise ConfigurationError(
            f"'flowcoord serve' needs aiohttp ({exc})",
            hint="pip install 'flowcoord[aiohttp]'",
        ) from None
    registry = load_registry(args.registry)
    open_journal(args.journal)  # a bad URL fails here, before the server starts
    token = args.token or os.environ.get(_ENV_TOKEN) or None
    if token is None:
        token = secrets.token_urlsafe(24)
        print(
            f"flowcoord: generated API token: {token} (set --token or {_ENV_TOKEN} to choose)",
            file=sys.stderr,
        )
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    app = create_app(
        registry=registry,
        token=token,
        engine_factory=lambda: Engine(open_journal(args.journal)),
        prefix=args.prefix,
        dashboard=not args.no_dashboard,
        protect_reads=args.protect_reads,
        # with --zk, resume and cancel respect the job board's live claims
        board_factory=(lambda: open_board_of(args)) if args.zk else None,
    )
    host = args.host
    shown = f"[{host}]" if ":" in host else host
    try:
        web.run_app(
            app,
            host=host,
            port=args.port,
            print=lambda _: print(
                f"flowcoord: serving {len(registry)} flow(s) on http://{shown}:{args.port}/ "
                f"(journal {redact(args.journal)}"
                + (f"; job board on {args.zk}" if args.zk else "")
                + "; Ctrl-C to stop)",
                file=sys.stderr,
            ),
        )
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve on {host}:{args.port}: {exc.strerror or exc}"
        ) from None
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import main

    return int(main(list(args.args)) or 0)


def cmd_bench(args: argparse.Namespace) -> int:
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if importlib.util.find_spec("benchmarks") is None:
        print(
            "flowcoord: no 'benchmarks' package here; run 'flowcoord bench' from a flowcoord "
            "source checkout",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return subprocess.call([sys.executable, "-m", "benchmarks", *args.args])


def cmd_worker(args: argparse.Namespace) -> int:
    from .._coord._workers import run_worker
    from ._worker import worker_options, zk_auth

    opts = worker_options(args.args)  # bad usage exits with status 2
    if opts.gc_threshold:
        import gc

        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(opts.gc_threshold, max(gen1, 20), max(gen2, 20))
    registry = load_registry(opts.registry)
    backend = open_journal(opts.journal)
    anyio.run(
        lambda: run_worker(
            zk_hosts=opts.zk,
            namespace=opts.namespace,
            journal=backend,
            registry=registry,
            name=opts.name,
            capacity=opts.capacity,
            session_timeout=opts.session_timeout,
            path=opts.board,
            shutdown_timeout=opts.shutdown_timeout,
            auth=zk_auth(opts),
            max_claims=opts.max_claims,
            max_failures=opts.max_failures,
        )
    )
    return EXIT_OK  # stopped by SIGTERM/SIGINT, its jobs handed over
