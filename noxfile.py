"""nox sessions: tests, lint, docs, bench, demo.

``nox -s tests`` is what CI runs (via scripts/test.sh)."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """The whole suite (installs ZooKeeper/PostgreSQL/Chromium from Debian when missing)."""
    session.run("./scripts/test.sh", *session.posargs, external=True)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("ruff", "check", "src", "tests", "benchmarks", "examples")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "examples")
    session.run("mypy", "--strict", "src", "tests")
    session.run("lint-imports")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site, built strictly (broken links and references fail) into site/.
    ``mkdocs serve`` (with the ``docs`` extra installed) serves it with live reload."""
    session.install("-e", ".[docs,aiohttp]")  # the reference imports flowcoord.aiohttp
    session.run("mkdocs", "build", "--strict", *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: ratios against baselines measured in the same run; writes JSON. The
    peers (TaskFlow, DBOS) come from the ``bench`` extra."""
    session.install("-e", ".[dev,bench]")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    session.install("-e", ".")
    session.run("flowcoord", "demo", *session.posargs)
