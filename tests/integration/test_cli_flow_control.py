"""``flowcoord worker --partition-limit NAME=N --rate-limit NAME=COUNT/PERIOD``: parsed, checked,
and declared on the board beside the limits the board has already."""

from __future__ import annotations

import pytest

import flowcoord as fc
from flowcoord._cli._worker import queue_settings, worker_options
from flowcoord._coord._contract import QueueConfig
from flowcoord._coord._memory import MemoryCoordinator
from flowcoord._coord._workers import declare_queues, run_worker
from flowcoord.errors import ConfigurationError

_REQUIRED = ["--zk", "h:1", "--journal", "memory:", "--registry", "m:r"]


def test_the_worker_takes_partition_and_rate_limits(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [*_REQUIRED, "--queue", "t", "--queue", "mail", "--partition-limit", "t=2"]
    opts = worker_options([*argv, "--rate-limit", "mail=10/1", "--rate-limit", "t=5/0.5s"])
    assert queue_settings(opts) == {
        "queues": ["t", "mail"],
        "queue_limits": {},
        "worker_limits": {},
        "partition_limits": {"t": 2},
        "rate_limits": {"mail": (10, 1.0), "t": (5, 0.5)},
    }
    assert "partition_limits" not in queue_settings(worker_options(_REQUIRED))
    bad = [
        (["--partition-limit", "t=0"], "is not NAME=N"),
        (["--rate-limit", "t=10"], "is not NAME=COUNT/PERIOD"),
        (["--rate-limit", "t=0/1"], "is not NAME=COUNT/PERIOD"),
        (["--rate-limit", "t=1/0"], "is not NAME=COUNT/PERIOD"),
        (["--rate-limit", "t=1/inf"], "is not NAME=COUNT/PERIOD"),
        (["--rate-limit", "t=x/1"], "is not NAME=COUNT/PERIOD"),
        (["--rate-limit", "a/b=1/1"], "is not a queue name"),
        (["--queue", "a", "--rate-limit", "b=1/1"], "this worker does not serve queue 'b'"),
        (["--queue", "a", "--partition-limit", "b=1"], "this worker does not serve queue 'b'"),
    ]
    for args, message in bad:
        with pytest.raises(SystemExit) as info:
            worker_options([*_REQUIRED, *args])
        assert info.value.code == 2
        assert message in capsys.readouterr().err


@pytest.mark.anyio
async def test_declared_limits_keep_the_ones_the_board_has() -> None:
    board = MemoryCoordinator().board()
    await board.declare_queue("t", concurrency=4, rate_limit=(3, 1.0))
    await declare_queues(board, ["t", "new", "default"], partition_limits={"t": 2})
    assert await board.queues() == [
        QueueConfig("default"),
        QueueConfig("new"),
        QueueConfig("t", 4, 2, (3, 1.0)),
    ]
    await declare_queues(board, ["t"], {"t": 1}, rate_limits={"t": (9, 0.5)})
    assert await board.queue("t") == QueueConfig("t", 1, 2, (9, 0.5))


@pytest.mark.anyio
async def test_run_worker_refuses_bad_partition_or_rate_limits() -> None:
    cases: list[tuple[dict[str, object], str]] = [
        ({"partition_limits": {"default": 0}}, "at least 1"),
        ({"partition_limits": {"other": 1}}, "does not serve"),
        ({"rate_limits": {"default": (0, 1.0)}}, "rate limit"),
        ({"rate_limits": {"other": (1, 1.0)}}, "does not serve"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ConfigurationError, match=message):
            await run_worker(
                zk_hosts="127.0.0.1:1",
                namespace="/x",
                journal=fc.MemoryJournal(),
                registry=fc.FlowRegistry(),
                **kwargs,  # type: ignore[arg-type]
            )
