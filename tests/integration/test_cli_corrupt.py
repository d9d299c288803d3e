"""The ``flowcoord`` command on a journal edited behind flowcoord's back: one line naming the
flow, the entry (seq, kind) and what is wrong with it, exit 2 — and nothing written."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_cli import assert_clean_error, cli

FLOWS = textwrap.dedent(
    """
    import flowcoord as fc


    @fc.task(provides="a")
    async def add(size):
        return size + 1


    @fc.task(provides="b")
    async def double(a):
        return a * 2


    @fc.task
    async def check(b):
        return None


    def build():
        return fc.Linear("demo", add, double, check)
    """
)


def _sql(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as conn, conn:
        return conn.execute(sql, params).fetchall()


def _entries(db: Path) -> list[tuple[Any, ...]]:
    return _sql(db, "SELECT * FROM entries ORDER BY flow_id, seq")


@pytest.fixture
def crashed(tmp_path: Path) -> Path:
    """Flow f1 in tmp_path/j.sqlite as a crash leaves it: add and double done, check not
    started (seq 0 flow.created, 1 flow.state, 2-3 add, 4-5 double)."""
    (tmp_path / "myflows.py").write_text(FLOWS)
    db = tmp_path / "j.sqlite"
    proc = cli(tmp_path, "run", "myflows:build", "-i", "size=2", "--journal", str(db),
               "--flow-id", "f1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert [r[2] for r in _entries(db)][:6] == [
        "flow.created", "flow.state", "task.started", "task.succeeded", "task.started",
        "task.succeeded",
    ]  # fmt: skip
    _sql(db, "DELETE FROM entries WHERE seq >= 6")
    _sql(db, "UPDATE flows SET state = 'RUNNING'")
    return db


_ROW = "INSERT INTO entries VALUES ('f1', 6, ?, ?, ?, NULL, 0, 1.0)"
CASES = [
    pytest.param(
        'UPDATE entries SET data = \'{"result":3,"attempt"\' WHERE seq = 3',
        (),
        "(seq 3, task.succeeded, task 'add') is corrupt: its data is not valid JSON",
        id="succeeded data not JSON",
    ),
    pytest.param(
        "UPDATE entries SET state = 'DONE' WHERE seq = 1",
        (),
        "(seq 1, flow.state) is corrupt: its state 'DONE' is not a flow state",
        id="state unknown",
    ),
    pytest.param(
        _ROW,
        ("task.failed", "check", '{"failure":"boom","attempt":1}'),
        "(seq 6, task.failed, task 'check') is corrupt: its failure is 'boom', not an object",
        id="failed data of the wrong shape",
    ),
    pytest.param(
        _ROW,
        ("task.succeeded", "zzz", '{"result":null,"attempt":1}'),
        "(seq 6, task.succeeded, task 'zzz') is corrupt: it names task 'zzz', which the flow "
        "does not have",
        id="succeeded for a task not in the flow",
    ),
]


@pytest.mark.parametrize(("sql", "params", "fragment"), CASES)
def test_flows_show_names_the_corrupt_entry(
    crashed: Path, sql: str, params: tuple[object, ...], fragment: str
) -> None:
    _sql(crashed, sql, *params)
    proc = cli(crashed.parent, "flows", "show", "f1", "--journal", str(crashed))
    assert_clean_error(proc, "flowcoord: error: flow 'f1': journal entry " + fragment)
    assert proc.stdout == ""
    # with --json the error is one JSON object on stderr
    proc = cli(crashed.parent, "flows", "show", "f1", "--journal", str(crashed), "--json")
    assert (proc.returncode, proc.stdout) == (2, ""), proc.stderr
    error = json.loads(proc.stderr)
    assert error["type"] == "JournalCorrupt"
    assert ("flow 'f1': journal entry " + fragment) in error["message"]
    assert error["hint"]


def test_resume_run_cancel_and_retry_refuse_a_corrupt_flow_writing_nothing(crashed: Path) -> None:
    _sql(crashed, _ROW, "task.succeeded", "zzz", '{"result":null,"attempt":1}')
    before = _entries(crashed)
    journal = ["--journal", f"sqlite:///{crashed}"]
    flow = ["--flow", "myflows:build"]
    listed = cli(crashed.parent, "flows", "list", *journal)  # the summary is not replayed
    assert listed.returncode == 0, listed.stderr
    assert "f1" in listed.stdout
    for args in (
        ["flows", "resume", "f1", *journal, *flow],
        ["flows", "cancel", "f1", *journal, *flow],
        ["flows", "retry", "f1", "--from-task", "double", "--new-id", "f2", *journal, *flow],
        ["run", "myflows:build", "--flow-id", "f1", *journal],
        ["run", "myflows:build", "-i", "size=2", "--flow-id", "f1", *journal],
    ):
        proc = cli(crashed.parent, *args)
        assert_clean_error(proc, "flow 'f1': journal entry (seq 6, task.succeeded, task 'zzz')")
        assert "which the flow does not have" in proc.stderr
        assert _entries(crashed) == before, args  # nothing written, no new flow f2 either
