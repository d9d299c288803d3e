"""One journal contract, every backend: the ``journal_backend`` fixture yields each in turn."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flowcoord._journal._contract import JournalBackend
from flowcoord._journal._memory import MemoryJournal


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def journal_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[JournalBackend]:
    backend: JournalBackend
    if request.param == "memory":
        backend = MemoryJournal()
    elif request.param == "sqlite":
        from flowcoord._journal._sqlite import SQLiteJournal

        backend = SQLiteJournal(tmp_path / "journal.sqlite")
    else:
        from flowcoord._journal._postgres import PostgresJournal

        dsn: str = request.getfixturevalue("pg_dsn")
        backend = PostgresJournal(dsn, schema=f"t_{uuid.uuid4().hex[:12]}")
    async with backend:
        yield backend
