"""``flowcoord jobs``, run as subprocesses against a real ZooKeeper board: post under a key
(deduplicated, conflicting), list and show, trash (refused while claimed), the trash,
requeue, purge, queues and members; tables by default, ``--json`` the API's shapes, refusals
exit 1 (JSON errors under ``--json``), bad usage 2."""

from __future__ import annotations

import json
import re
import textwrap
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from flowcoord._coord._queueing import job_id_for
from flowcoord.coordination import open_board
from tests.integration.test_cli import cli

pytestmark = [pytest.mark.anyio, pytest.mark.zookeeper]

FLOWS = textwrap.dedent(
    """
    import flowcoord as fc


    @fc.task(provides="vm")
    async def allocate(size: int, zone: str = "eu", dry: bool = False) -> str:
        return f"vm-{size}-{zone}"


    registry = fc.FlowRegistry()
    registry.register("provision", lambda: fc.Linear("provision", allocate))
    """
)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "jobflows.py").write_text(FLOWS)
    return tmp_path


class Jobs:
    """``flowcoord jobs ...`` on one board (the test's ZooKeeper namespace), run in a thread:
    the test's own ZooKeeper session keeps its contact meanwhile."""

    def __init__(self, work: Path, hosts: str, namespace: str) -> None:
        self.work, self.hosts, self.namespace = work, hosts, namespace

    async def __call__(self, *args: str) -> Any:
        where = ["--zk", self.hosts, "--namespace", self.namespace]
        return await anyio.to_thread.run_sync(lambda: cli(self.work, "jobs", *args, *where))

    async def ok(self, *args: str) -> str:
        proc = await self(*args)
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        return str(proc.stdout)

    async def json(self, *args: str) -> Any:
        return json.loads(await self.ok(*args, "--json"))

    async def refused(self, *args: str) -> dict[str, Any]:
        """Exit 1, nothing on stdout, one JSON error on stderr."""
        proc = await self(*args, "--json")
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        assert proc.stdout == ""
        (line,) = proc.stderr.strip().splitlines()
        error: dict[str, Any] = json.loads(line)
        assert set(error) == {"type", "message", "hint"}
        return error


@pytest.fixture
def jobs(work: Path, zk_hosts: str, zk_namespace: str) -> Jobs:
    return Jobs(work, zk_hosts, zk_namespace)


def _rows(stdout: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in stdout.strip().splitlines()]


async def test_post_under_a_key_list_show_and_conflicts(
    jobs: Jobs, zk_hosts: str, zk_namespace: str
) -> None:
    async with open_board(zk_hosts=zk_hosts, namespace=zk_namespace) as board:
        await board.declare_queue("bulk")
    post = ["post", "provision", "-i", "size=2", "-i", "dry=no", "--registry", "jobflows:registry"]
    job = await jobs.json(*post, "--key", "order-1", "--flow-id", "p-1", "--queue", "bulk")
    assert (job["job_id"], job["key"], job["flow_id"], job["queue"]) == (
        job_id_for("order-1"),
        "order-1",
        "p-1",
        "bulk",
    )
    assert job["inputs"] == {"size": 2, "dry": False}  # converted by the flow's annotations
    assert (job["status"], job["deduplicated"]) == ("waiting", False)
    again = await jobs.ok(*post, "--key", "order-1", "--flow-id", "p-1", "--queue", "bulk")
    assert again.startswith(f"job {job['job_id']} (key 'order-1'): already posted, waiting")
    other = await jobs.refused(*post[:-4], "-i", "size=3", "--key", "order-1", "--queue", "bulk")
    assert other["type"] == "JobKeyConflict"
    assert "order-1" in other["message"]
    bad = await jobs("post", "provision", "-i", "size=big", "--registry", "jobflows:registry")
    assert bad.returncode == 2  # the input does not fit its annotation: bad usage
    assert "size" in bad.stderr
    assert (await jobs("post", "provision", "--queue", "nope")).returncode == 1  # UnknownQueue

    tagged = await jobs.json("post", "provision", "--partition", "acme", "--header", "trace=00-abc")
    assert (tagged["partition"], tagged["headers"]) == ("acme", {"trace": "00-abc"})
    assert "partition acme" in await jobs.ok("show", tagged["job_id"])
    assert (await jobs("post", "provision", "--header", "no-equals")).returncode == 2
    await jobs.ok("trash", tagged["job_id"], "--reason", "only checking its shape")
    later = await jobs.ok(
        "post", "provision", "-i", "size=1", "--priority", "5", "--not-before", "1h"
    )
    assert "priority 5" in later
    assert "due " in later
    listed = _rows(await jobs.ok("list"))
    assert listed[0][:5] == ["JOB_ID", "QUEUE", "PRI", "STATUS", "OWNER"]
    assert [(r[1], r[2], r[3]) for r in listed[1:]] == [
        ("default", "5", "delayed"),
        ("bulk", "0", "waiting"),
    ]
    only = await jobs.json("list", "--queue", "bulk")
    assert [j["flow_id"] for j in only["jobs"]] == ["p-1"]
    shown = await jobs.ok("show", job["job_id"])
    assert "key       order-1" in shown
    assert 'inputs    {"size": 2, "dry": false}' in shown
    assert (await jobs.json("show", job["job_id"]))["flow_id"] == "p-1"
    assert (await jobs.refused("show", "0" * 24))["type"] == "JobNotFound"
    missing = await jobs("show", "0" * 24)
    assert missing.returncode == 1
    assert missing.stderr.startswith("flowcoord: no job ")


async def test_trash_requeue_purge_queues_and_members(
    jobs: Jobs, zk_hosts: str, zk_namespace: str
) -> None:
    async with open_board(zk_hosts=zk_hosts, namespace=zk_namespace) as worker:
        await worker.declare_queue("bulk", concurrency=3)
        await worker.register(
            "worker-1",
            {"host": "h1", "pid": 7, "queues": ["bulk"], "capacity": 4, "started_at": time.time()},
        )
        free = await worker.post("provision", {"size": 1}, flow_id="free", queue="bulk")
        held = await worker.post("provision", {"size": 2}, flow_id="held", queue="bulk")
        claim = await worker.claim(held, "worker-1")

        assert (await jobs("trash", free.job_id)).returncode == 2  # --reason is required
        refused = await jobs.refused("trash", held.job_id, "--reason", "stuck")
        assert refused["type"] == "JobAlreadyClaimed"
        assert "cancel or stop its flow first" in refused["message"]
        out = await jobs.ok("trash", free.job_id, "--reason", "wrong region")
        (trash_id,) = re.findall(r"requeue ([0-9a-f]{24}-\d{10})$", out.strip())
        assert (await jobs.refused("trash", free.job_id, "--reason", "again"))[
            "type"
        ] == "JobNotFound"

        table = _rows(await jobs.ok("trashed"))
        assert table[0] == ["TRASH_ID", "QUEUE", "FLOW", "FLOW_ID", "CLAIMS", "TRASHED", "REASON"]
        assert (table[1][0], table[1][3], table[1][-1]) == (trash_id, "free", "wrong region")

        queues = {q["name"]: q for q in (await jobs.json("queues"))["queues"]}
        bulk = queues["bulk"]
        assert bulk["config"]["concurrency"] == 3
        assert (bulk["waiting"], [j["owner"] for j in bulk["running"]]) == (0, ["worker-1"])
        assert bulk["served_by"] == [{"member": "worker-1", "worker_limit": None}]
        text = await jobs.ok("queues")
        assert re.search(r"^bulk\s+concurrency=3\s+0\s+0\s+1\s+worker-1$", text, re.M), text
        assert "1 in the trash" in text
        members = (await jobs.json("members"))["members"]
        assert [(m["name"], [j["flow_id"] for j in m["jobs"]]) for m in members] == [
            ("worker-1", ["held"])
        ]
        assert re.search(
            r"^worker-1\s+h1\s+7\s+\S+ \S+\s+bulk\s+1/4\s+held \(bulk\)$",
            await jobs.ok("members"),
            re.M,
        )

        back = await jobs.json("requeue", trash_id)
        assert (back["job_id"], back["flow_id"], back["claims"], back["queue"]) == (
            free.job_id,
            "free",
            0,
            "bulk",
        )
        assert (await jobs.refused("requeue", trash_id))["type"] == "JobNotFound"
        assert (await jobs("requeue", "nonsense")).returncode == 1

        await worker.abandon(claim)
        await jobs.ok("trash", held.job_id, "--reason", "released now")
        await jobs.ok("trash", free.job_id, "--reason", "twice")
        assert (await jobs("purge")).returncode == 2  # --before or --all
        assert (await jobs.json("purge", "--before", "1h"))["purged"] == 0  # none is that old
        assert (await jobs.ok("purge", "--all")).strip() == "2 trash entries deleted"
        assert await jobs.json("trashed") == {"trash": []}
        assert await worker.jobs() == []
