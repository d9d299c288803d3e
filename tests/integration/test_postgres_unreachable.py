"""Nothing listening where the PostgreSQL journal should be: open() and the CLI say so at once
(a few quick retries), instead of retrying for the whole ``retry_deadline``."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from flowcoord._journal._postgres import PostgresJournal
from flowcoord.errors import ConfigurationError, JournalUnavailable

ROOT = Path(__file__).resolve().parents[2]
#: Far above what a refused connection may take, far below the 30 s retry deadline: a guard
#: against the old behaviour (retrying until the deadline), never a measure of speed.
GUARD = 20.0


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released, never listened on)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.anyio
@pytest.mark.parametrize("min_size", [1, 0])  # 0: the pool connects for the schema's check
async def test_open_with_nothing_listening_fails_at_once(min_size: int) -> None:
    port = _closed_port()
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    journal = PostgresJournal(dsn, min_size=min_size)  # the default deadlines
    with anyio.fail_after(GUARD), pytest.raises(JournalUnavailable) as info:
        await journal.open()
    message = str(info.value)
    assert f"cannot reach PostgreSQL at 127.0.0.1:{port}" in message
    assert "connection refused" in message
    assert "ConnectionRefusedError" in message
    assert "connect_deadline" in message  # how to wait for a server that is starting
    with pytest.raises(JournalUnavailable, match="not open"):
        await journal.read("f1")


@pytest.mark.anyio
async def test_connect_deadline_can_be_raised_and_is_checked() -> None:
    port = _closed_port()
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    journal = PostgresJournal(dsn, connect_deadline=0.0)  # one attempt, no retry
    with anyio.fail_after(GUARD), pytest.raises(JournalUnavailable, match="connection refused"):
        await journal.open()
    with pytest.raises(ConfigurationError, match="connect_deadline"):
        PostgresJournal(dsn, connect_deadline=-1.0)


@pytest.mark.parametrize("port", [1, None])
def test_cli_flows_list_with_nothing_listening_fails_with_one_clear_line(
    port: int | None,
) -> None:
    port = port or _closed_port()
    argv = [sys.executable, "-m", "flowcoord", "flows", "list"]
    argv += ["--journal", f"postgresql://127.0.0.1:{port}/x"]
    proc = subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=GUARD, check=False
    )
    assert proc.returncode != 0
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("flowcoord: error: cannot reach PostgreSQL at ")
    assert f"127.0.0.1:{port}" in lines[0]
    assert "connection refused" in lines[0]
