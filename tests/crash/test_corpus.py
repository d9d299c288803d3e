"""The crash explorer over the corpus (tests/crash/corpus.py), on every journal backend: every
journal cut (and, on small flows, every second cut during the resume) and a fault at every
backend write must leave each flow as the uncrashed run leaves it."""

from __future__ import annotations

import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import pytest

import flowcoord as fc
from flowcoord.testing import CrashExplorer, ExplorationReport, FaultProxy

from .conftest import record
from .corpus import CASES, CONTROL_CASES, Case

pytestmark = pytest.mark.anyio


def _ids(case: Case) -> str:
    return case.name


async def _explore(
    case: Case, journal: fc.journal.JournalBackend | None, depth: int
) -> ExplorationReport:
    report = await CrashExplorer(
        case.make, case.inputs, journal=journal, depth=depth, actions=case.actions
    ).explore()
    print(report)
    record(report)
    assert report.reference is case.expect, report  # the corpus says what it exercises
    assert report.cuts == report.entries
    assert report.faults > 0
    report.check()
    return report


@pytest.mark.parametrize("case", CASES, ids=_ids)
async def test_memory(case: Case) -> None:
    report = await _explore(case, None, case.depth)
    if case.depth == 2:
        assert report.second_cuts > 0


@pytest.mark.parametrize("case", CASES, ids=_ids)
async def test_sqlite(case: Case, tmp_path: Path) -> None:
    await _explore(case, fc.SQLiteJournal(tmp_path / "j.sqlite"), case.depth)


@pytest.mark.parametrize("case", CONTROL_CASES, ids=_ids)
@pytest.mark.parametrize("journal", ["memory", "sqlite"])
async def test_control_at_every_point(case: Case, journal: str, tmp_path: Path) -> None:
    backend = fc.SQLiteJournal(tmp_path / "j.sqlite") if journal == "sqlite" else None
    await _explore(case, backend, case.depth)


@pytest.mark.postgres
@pytest.mark.parametrize("case", CASES, ids=_ids)
async def test_postgres(case: Case, pg_dsn: str) -> None:
    journal = fc.PostgresJournal(pg_dsn, schema=f"x_{uuid.uuid4().hex[:12]}")
    await _explore(case, journal, 1)


def _big(n: int) -> fc.Flow:
    """A bigger flow (chains beside a wide layer) for sampled cuts."""
    from .corpus import _task

    chain = [
        _task(f"c{i}", provides=f"c{i}", requires={"p": f"c{i - 1}"} if i else None)
        for i in range(n // 2)
    ]
    wide = [_task(f"w{i}", steps=i % 3, revert=i % 2 == 0) for i in range(n - n // 2)]
    return fc.Linear("big", fc.Linear("chain", *chain), fc.Unordered("wide", *wide))


@pytest.mark.parametrize("every", [7, 1000])
async def test_sqlite_big_flow_sampled_with_checkpoints(tmp_path: Path, every: int) -> None:
    """120 tasks, 40 sampled cuts; with checkpoint_every=7 resumes read from checkpoints."""
    report = await CrashExplorer(
        lambda: _big(120),
        journal=fc.SQLiteJournal(tmp_path / "j.sqlite"),
        sample=40,
        faults=False,
        checkpoint_every=every,
    ).explore()
    print(report)
    record(report)
    assert report.cuts == 40
    assert report.entries > 240
    report.check()


@pytest.mark.postgres
@pytest.mark.parametrize(
    "case", [c for c in CASES if c.name in ("linear", "fails", "foreach-retry")], ids=_ids
)
async def test_postgres_connection_cut_before_each_write(
    case: Case, postgres_server: Any, pg_dsn: str
) -> None:
    """The connection to PostgreSQL is cut (RST) just before each backend write of the run:
    the journal retries on a new connection and the flow ends as the uncrashed run does."""
    url = urllib.parse.urlsplit(pg_dsn)
    async with FaultProxy(url.hostname or "127.0.0.1", url.port or 5432) as proxy:
        dsn = pg_dsn.replace(f":{url.port}/", f":{proxy.port}/", 1)
        journal = fc.PostgresJournal(dsn, schema=f"x_{uuid.uuid4().hex[:12]}")
        cut: list[int] = []

        async def cut_all() -> None:
            cut.append(await proxy.cut())

        report = await CrashExplorer(
            case.make, case.inputs, journal=journal, actions=case.actions, cut=cut_all
        ).explore()
    print(report, f"; {sum(cut)} connections cut before {len(cut)} writes")
    record(report)
    report.check()
    assert len(cut) > 3
    assert sum(cut) >= len(cut)  # every cut met a live connection
