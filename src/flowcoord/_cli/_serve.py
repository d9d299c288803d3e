"""Serving: the web face, the worker, the demo and the benchmarks."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import secrets
import socket
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import anyio

from .._engine._engine import Engine
from .._journal._urls import open_journal, redact
from .._model._registry import FlowRegistry
from ..errors import ConfigurationError
from ._common import _ENV_TOKEN, EXIT_OK, EXIT_USAGE
from ._load import load_object, load_registry
from ._output import log_state_change
from ._worker import open_board_of

if TYPE_CHECKING:
    from .._coord._conductor import Conductor
    from ..prometheus import Metrics


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
    metrics = _metrics()

    def engine() -> Engine:
        made = Engine(open_journal(args.journal))
        if metrics is not None:
            metrics.watch(made)
        return made

    redactor = load_object(args.redact) if args.redact else None
    if redactor is not None and not callable(redactor):
        raise ConfigurationError(
            f"--redact {args.redact}: {redactor!r} is not a function",
            hint="name a function redact(field, value) -> the value to show",
        )
    sizes: dict[str, Any] = {}
    if args.max_value_size is not None:
        sizes["max_value_size"] = args.max_value_size or None  # 0: never cut
    app = create_app(
        registry=registry,
        token=token,
        engine_factory=engine,
        redact=redactor,
        **sizes,
        prefix=args.prefix,
        dashboard=not args.no_dashboard,
        protect_reads=args.protect_reads,
        # with --zk, resume and cancel respect the job board's live claims
        board_factory=(lambda: open_board_of(args)) if args.zk else None,
    )
    if metrics is not None:  # GET /metrics, for Prometheus (read-only, no token)

        async def scrape(request: web.Request) -> web.Response:
            body, content_type = metrics.render()
            return web.Response(body=body, headers={"Content-Type": content_type})

        app.router.add_get("/metrics", scrape)
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


def _metrics() -> Metrics | None:
    """Prometheus metrics in their own registry, if prometheus-client is installed."""
    try:
        from prometheus_client import CollectorRegistry

        from ..prometheus import Metrics
    except ImportError:
        return None
    return Metrics(CollectorRegistry())


def cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import main

    return int(main([args.journal_path] if args.journal_path else []) or 0)


def cmd_completion(args: argparse.Namespace) -> int:
    """Print the shell's completion script (argcomplete's)."""
    try:
        from argcomplete.shell_integration import shellcode
    except ImportError:  # pragma: no cover - a dependency of flowcoord
        raise ConfigurationError(
            "shell completion needs argcomplete", hint="pip install argcomplete"
        ) from None
    sys.stdout.write(shellcode(["flowcoord"], shell=args.shell))
    return EXIT_OK


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


def _start_line(
    opts: argparse.Namespace,
    name: str,
    registry: FlowRegistry,
    settings: dict[str, Any] | None = None,
) -> str:
    """What a starting worker says, on one line: where it takes jobs from, where it
    journals, what it runs and its limits (no password)."""
    flows = ", ".join(registry)
    auth = f", digest auth as {opts.zk_auth.partition(':')[0]!r}" if opts.zk_auth else ""
    queues = ""
    if settings is not None:
        shown = []
        for q in settings["queues"]:
            limits = [f"{n} at once" for n in [settings["queue_limits"].get(q)] if n]
            limits += [f"{n} here" for n in [settings["worker_limits"].get(q)] if n]
            limits += [
                f"{n} per partition" for n in [settings.get("partition_limits", {}).get(q)] if n
            ]
            limits += [
                f"{c} per {p:g}s" for c, p in [settings.get("rate_limits", {}).get(q, (0, 0))] if c
            ]
            shown.append(f"{q} ({', '.join(limits)})" if limits else q)
        queues = f"; queues {', '.join(shown)}"
    metrics = (
        f"; metrics on http://127.0.0.1:{opts.metrics_port}/metrics"
        if getattr(opts, "metrics_port", None)
        else ""
    )
    return (
        f"flowcoord worker {name}: ZooKeeper {opts.zk} (namespace {opts.namespace}, board "
        f"{opts.board}, session timeout {opts.session_timeout:g}s{auth}); journal "
        f"{redact(opts.journal)}; registry {opts.registry} ({len(registry)} flow"
        f"{'' if len(registry) == 1 else 's'}: {flows or 'none'}); capacity {opts.capacity}, "
        f"max waiting {opts.max_waiting}, {_hand_back(opts.hand_back_after)}, max claims "
        f"{opts.max_claims}, max failures "
        f"{opts.max_failures}, shutdown timeout "
        f"{opts.shutdown_timeout:g}s{queues}{metrics}; SIGTERM or Ctrl-C hands its jobs back "
        "and stops"
    )


def _hand_back(after: float | None) -> str:
    return "sleepers kept" if after is None else f"sleepers of {after:g}s+ handed back"


def cmd_worker(args: argparse.Namespace) -> int:
    from .._coord._workers import run_worker
    from ._worker import board_path, queue_settings, zk_auth

    opts = args
    opts.board = board_path(opts)
    try:
        settings = queue_settings(opts)
    except ValueError as exc:
        raise ConfigurationError(str(exc), hint="serve the queue with --queue NAME") from None
    if opts.gc_threshold:
        import gc

        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(opts.gc_threshold, max(gen1, 20), max(gen2, 20))
    registry = load_registry(opts.registry)
    backend = open_journal(opts.journal)
    name = opts.name or f"{socket.gethostname()}-{os.getpid()}"  # run_worker's default
    metrics = None
    if opts.metrics_port:
        metrics = _metrics()
        if metrics is None:
            raise ConfigurationError(
                "--metrics-port needs prometheus-client", hint="pip install 'flowcoord[prometheus]'"
            )
    print(_start_line(opts, name, registry, settings), file=sys.stderr, flush=True)
    server = metrics.serve(opts.metrics_port) if metrics is not None else None

    def on_ready(conductor: Conductor) -> None:
        if opts.verbose:
            conductor.engine.add_listener(log_state_change)
        if metrics is not None:
            metrics.watch_conductor(conductor)
            metrics.watch_session(conductor.board.session)

    anyio.run(
        lambda: run_worker(
            zk_hosts=opts.zk,
            namespace=opts.namespace,
            journal=backend,
            registry=registry,
            name=name,
            capacity=opts.capacity,
            session_timeout=opts.session_timeout,
            path=opts.board,
            shutdown_timeout=opts.shutdown_timeout,
            auth=zk_auth(opts),
            max_claims=opts.max_claims,
            max_failures=opts.max_failures,
            max_waiting=opts.max_waiting,
            hand_back_after=opts.hand_back_after,
            on_ready=on_ready,
            **settings,
        )
    )
    if server is not None:
        server.close()
    return EXIT_OK  # stopped by SIGTERM/SIGINT, its jobs handed over
