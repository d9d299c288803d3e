"""ZooKeeper fixtures (standalone server and 3-node ensemble on loopback).

- ``zk_server``: one standalone server for the whole test session.
- ``zk_hosts``: its connection string.
- ``zk_namespace``: a fresh chroot path per test, so tests never see each other's nodes.
- ``zk_ensemble``: a 3-node ensemble shared by a module's tests and healed after each test
  (paused nodes resumed, stopped ones restarted), so fail-over tests can break it freely.

When a test fails, the tail of every server log it used is added to its report.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterator

import pytest

from flowcoord.testing import ZooKeeperEnsemble, ZooKeeperServer

_LOG_TAIL_LINES = 150


@pytest.fixture(scope="session")
def zk_server() -> Iterator[ZooKeeperServer]:
    with ZooKeeperServer() as server:
        yield server


@pytest.fixture
def zk_hosts(zk_server: ZooKeeperServer) -> str:
    return zk_server.hosts


@pytest.fixture
def zk_namespace() -> str:
    return f"/test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def _zk_ensemble_module() -> Iterator[ZooKeeperEnsemble]:
    with ZooKeeperEnsemble(3) as ensemble:
        yield ensemble


@pytest.fixture
def zk_ensemble(_zk_ensemble_module: ZooKeeperEnsemble) -> Iterator[ZooKeeperEnsemble]:
    _zk_ensemble_module.heal()
    yield _zk_ensemble_module
    _zk_ensemble_module.heal()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and report.when != "teardown":
        _add_server_logs(item, report)
    return report


def _add_server_logs(item: pytest.Item, report: pytest.TestReport) -> None:
    funcargs = getattr(item, "funcargs", {})
    seen: set[int] = set()
    for name, value in funcargs.items():
        if not isinstance(value, ZooKeeperEnsemble) or id(value) in seen:
            continue
        seen.add(id(value))
        for i in range(value.size):
            try:
                lines = value.log_text(i).splitlines()[-_LOG_TAIL_LINES:]
            except RuntimeError:  # already closed
                continue
            report.sections.append((f"{name} node {i} log (tail)", "\n".join(lines)))
